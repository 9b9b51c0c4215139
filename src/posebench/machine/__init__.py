"""Facts about the machine a measurement runs on, lowest layer first: `cpu` (flags, oneDNN caps, usable cores),
`microarch` (which core), `isa` (which int8 kernels), `roofline` (peak and clock), `denormals`, `probe`, and
`environment` (the fingerprint every record carries). Nothing here imports from the rest of posebench but
`errors`."""

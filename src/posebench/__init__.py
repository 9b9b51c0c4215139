"""posebench: compress, export, run, validate and time Ultralytics pose models on every runtime.

Importing the package is cheap: heavy libraries (torch, ultralytics, runtimes) are imported by the
modules that use them, when they are used.
"""

__version__ = "0.1.0"

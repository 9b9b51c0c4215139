"""What a pose artifact's raw output looks like: end-to-end (1, max_det, 6 + K*D) or one-to-many
(1, 4 + nc + K*D, anchors); an export checks the layout it declares, the decoder reads by it."""

from __future__ import annotations

from posebench.errors import InvalidInputError


def output_layout(shape: tuple[int, ...], kpt_shape: tuple[int, int], end2end: bool | None = None) -> str:
    """'end2end' or 'one2many' for a raw output shape, checked against the keypoint shape (and against the
    artifact's declared head, when known): a layout that does not fit is refused, never guessed silently."""
    k, d = kpt_shape
    if len(shape) != 3 or shape[0] != 1:
        raise InvalidInputError(f"expected a raw pose output of shape (1, C, anchors) or (1, max_det, 6 + K*D), got "
                                f"{tuple(shape)}")
    fits_e2e, fits_o2m = shape[2] == 6 + k * d, shape[1] - 4 - k * d >= 1
    if end2end is None:  # undeclared: a one-to-many output also has more anchors than channels
        fits_o2m = fits_o2m and shape[2] > shape[1]
        if fits_e2e or fits_o2m:
            return "end2end" if fits_e2e else "one2many"
    elif end2end and fits_e2e:
        return "end2end"
    elif not end2end and fits_o2m:
        return "one2many"
    expected = {None: "either pose layout", True: f"the end-to-end layout (1, max_det, {6 + k * d})",
                False: f"the one-to-many layout (1, 4 + nc + {k * d}, anchors)"}[end2end]
    raise InvalidInputError(f"the model output {tuple(shape)} does not fit {expected} for kpt_shape {list(kpt_shape)}: "
                            "does the keypoint shape match the model (--kpt-shape K,D for an artifact without "
                            "metadata)?")

"""The demo report's pure parts: label colours, overlays and the returned maps by pair."""

from __future__ import annotations

import ismrmrd
import numpy as np

from kmtr_stream.demo.run_report import LABEL_RGB, colour, overlay, returned_label_maps
from kmtr_stream.messages import Result


def test_colour_maps_each_acdc_label_and_greys_unknown_values() -> None:
    labels = np.array([[0, 1], [2, 3], [7, -1]])
    rgb = colour(labels)
    assert rgb.shape == (3, 2, 3) and rgb.dtype == np.uint8
    for (y, x), lab in np.ndenumerate(labels):
        want = LABEL_RGB[lab] if 0 <= lab < 4 else np.array([128, 128, 128])
        assert (rgb[y, x] == want).all()


def test_overlay_blends_labels_over_the_magnitude_and_keeps_background_grey() -> None:
    labels = np.zeros((4, 4), np.int64)
    labels[1, 1] = 3
    image = np.full((4, 4), 2.0 + 0j)
    image[0, 0] = 4.0
    out = overlay(labels, image)
    assert (out[0, 0] == 255).all() and (out[2, 2] == 127).all()  # grey, scaled to max
    want = (0.45 * 127.5 + 0.55 * LABEL_RGB[3]).astype(np.uint8)
    assert np.abs(out[1, 1].astype(int) - want.astype(int)).max() <= 1
    # a map on another grid than the image: colours alone
    assert (overlay(labels, np.ones((8, 8))) == colour(labels)).all()


def test_returned_label_maps_keys_images_by_phase_and_slice() -> None:
    def image(s: int, p: int, value: int) -> ismrmrd.Image:
        img = ismrmrd.Image.from_array(np.full((6, 5), value, np.int16))
        img.slice, img.phase = s, p
        return img

    replies = [image(0, 1, 2), Result(kind="slice", body={}), image(3, 0, 1)]
    maps = returned_label_maps(replies)
    assert set(maps) == {(1, 0), (0, 3)}
    assert maps[(1, 0)].shape == (6, 5) and (maps[(1, 0)] == 2).all()

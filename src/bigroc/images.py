"""Reading one image file that anyone may have made, for the sample folders and interpolate.py.

:func:`read_rgb8` is the only place an image file is decoded. It refuses, in one line naming
the file and the fix (ValueError):

- anything that is not a regular file (a FIFO named ``x.png`` would block the open);
- an image larger than ``MAX_SIDE`` per side, from its header, before a pixel is decoded
  (a 79 KB PNG can declare 9000 x 9000 pixels), and Pillow's decompression-bomb refusal;
- a PNG text chunk that unpacks past Pillow's limit ("Decompressed Data Too Large");
- a damaged or truncated file (a cut zlib stream passes every chunk CRC, so the whole image
  is decoded, not only verified);
- floating-point pixels (mode ``F``, e.g. a float TIFF named ``.png``).

16-bit greyscale is scaled to 8 bits (``round(v / 257)``), not clipped.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from bigroc.safe_load import regular_file

# Larger images are refused before a pixel is decoded (a 16 KB PNG can declare 10^8 pixels).
MAX_SIDE = 4096
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
FIX = "export it again as an 8- or 16-bit PNG or a JPEG, or remove it"


class ImageRefused(ValueError):
    """A refusal of ours, raised while Pillow's errors are being translated."""


def check_side(width: int, height: int, where: str) -> None:
    """Refuse images wider or taller than ``MAX_SIDE``."""
    if max(width, height) > MAX_SIDE:
        raise ImageRefused(f"{where}: images of {width}x{height} pixels are larger than bigroc reads "
                           f"({MAX_SIDE} per side); resize them to the classifier's input size first")


def _to_rgb8(im, path: Path) -> np.ndarray:
    """A loaded Pillow image as uint8 (H, W, 3) RGB."""
    if im.mode == "F":
        raise ImageRefused(f"{path}: floating-point pixels (mode F), which bigroc does not read; save it as an "
                           "8- or 16-bit PNG")
    if im.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(im).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ImageRefused(f"{path}: {im.mode} pixels outside 0..65535; save it as an 8- or 16-bit PNG")
        return np.repeat(np.rint(grey / 257.0).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def read_rgb8(path: str | Path) -> np.ndarray:
    """An image file (PNG, JPEG, ...), decoded whole, as uint8 (H, W, 3) RGB.

    Raises:
        ValueError: one line naming the file (see the module docstring for what is refused).
    """
    from PIL import Image, UnidentifiedImageError

    path = regular_file(path, "image file (PNG or JPEG)")
    try:
        with warnings.catch_warnings():  # refused below, by size, in our words
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image as im:
            check_side(*im.size, str(path))
            im.load()
            return _to_rgb8(im, path)
    except ImageRefused:
        raise
    except Image.DecompressionBombError:  # so many pixels that Pillow refuses to open it
        raise ValueError(f"{path}: the image is larger than bigroc reads ({MAX_SIDE} per side); resize it to the "
                         "classifier's input size first") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file PIL can read (PNG, JPG, ...); {FIX}") from None
    except ValueError as err:
        if "too large" in str(err).lower():  # zTXt/iTXt/iCCP chunks past Pillow's limit
            raise ValueError(f"{path}: a text chunk unpacks to more than Pillow allows (a decompression bomb); "
                             "save the image again without its metadata") from None
        raise ValueError(f"{path} cannot be decoded (ValueError: {str(err)[:120]}): the file is damaged or "
                         f"incomplete; {FIX}") from None
    except (OSError, SyntaxError, EOFError, IndexError, TypeError, struct.error, MemoryError) as err:  # Pillow's bad files
        raise ValueError(f"{path} cannot be decoded ({type(err).__name__}: {str(err)[:120]}): the file is damaged "
                         f"or incomplete; {FIX}") from None

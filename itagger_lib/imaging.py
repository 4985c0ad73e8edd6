"""Reading images: format and size from the header, integrity checks, oriented decoding.

Ingest must be close to hashing speed, so nothing here decodes pixels unless asked:
:func:`probe` reads the header (format, size, EXIF orientation) and checks the file's
structure (a JPEG ends with its EOI marker, a PNG with IEND, a WebP's RIFF size matches),
which catches truncated and non-image files without a full decode.

Transparency: an image with an alpha channel (or a transparent palette colour) is composited
onto :data:`ALPHA_BACKGROUND` (white) before anything measures or shows it, so pixels hidden
under transparency are never measured; the background is part of the science parameters'
hash (``docs/metrics.md``). Floating-point and 32-bit integer images (scientific or HDR
data) are refused with what to do: there is no one right way to map their values to colours.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from itagger_lib.errors import (
    CorruptImageError,
    ImageTooLargeError,
    UnreadableFileError,
    UnsupportedFormatError,
)

# Pillow format name -> the extension the store uses.
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "MPO": "jpg",  # multi-picture JPEG from phones: the first frame is a plain JPEG
    "PNG": "png",
    "WEBP": "webp",
    "TIFF": "tif",
    "BMP": "bmp",
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp"})
# Image suffixes we recognise but do not ingest: a clear failure rather than silence.
UNSUPPORTED_IMAGE_SUFFIXES = frozenset(
    {
        ".gif",
        ".heic",
        ".heif",
        ".avif",
        ".svg",
        ".jp2",
        ".ico",
        ".psd",
        ".cr2",
        ".nef",
        ".dng",
        ".raw",
    }
)
_ORIENTATION_TAG = 0x0112
ALPHA_BACKGROUND = (255, 255, 255)  # white: what a transparent image shows on a page
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_DEEP_MODES = {"F": "32-bit floating-point", "I": "32-bit integer"}
NOT_DISPLAYABLE = (
    "{what} image (scientific or HDR data, not a displayable photograph); convert it to an 8- or "
    "16-bit TIFF, PNG or JPEG first (tone-map HDR; scale data to its range), then ingest that"
)
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: format, extension in the store, and the displayed size."""

    format: str
    ext: str
    width: int
    height: int
    orientation: int = 1

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def check_readable(path: Path) -> None:
    """Raise :class:`UnreadableFileError` for broken links, loops, folders, no permission."""
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableFileError(path, "symlink loop; remove or fix the link") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UnreadableFileError(
                path, "permission denied (a folder on the path cannot be entered); fix permissions"
            ) from exc
        try:
            target = os.readlink(path)
        except OSError:
            target = None
        if target is not None:
            raise UnreadableFileError(
                path, f"broken symlink to {target!r}; fix the link or remove it"
            ) from exc
        raise UnreadableFileError(path, f"cannot be read ({exc.strerror}); check the path") from exc
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFileError(path, "is a folder, not a file; pass it as a folder to ingest")
    if not stat.S_ISREG(st.st_mode):
        # opening a FIFO blocks until a writer comes; a device may never end
        kind = (
            "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        )
        raise UnreadableFileError(path, f"is {kind}, not a regular file; only regular files are read")
    try:
        with path.open("rb"):
            pass
    except PermissionError as exc:
        raise UnreadableFileError(path, "permission denied; make the file readable (chmod a+r)") from exc
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot be opened ({exc.strerror}); check the file") from exc
    if st.st_size == 0:
        raise CorruptImageError(path, "is empty (0 bytes); re-export or re-copy the file")


def _tail(path: Path, n: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - n))
        return handle.read()


def _check_structure(path: Path, fmt: str) -> None:
    if fmt in {"JPEG", "MPO"}:
        # Trailing padding after EOI is common; a truncated file has no EOI near its end.
        if b"\xff\xd9" not in _tail(path, 4096):
            raise CorruptImageError(path, "truncated JPEG (no end-of-image marker); re-copy it")
    elif fmt == "PNG":
        if b"IEND" not in _tail(path, 64):
            raise CorruptImageError(path, "truncated PNG (no IEND chunk); re-copy it")
    elif fmt == "WEBP":
        with path.open("rb") as handle:
            header = handle.read(12)
        declared = int.from_bytes(header[4:8], "little") + 8
        if declared > path.stat().st_size:
            raise CorruptImageError(path, "truncated WebP (shorter than its RIFF header says)")
    elif fmt == "BMP":
        with path.open("rb") as handle:
            header = handle.read(6)
        declared = int.from_bytes(header[2:6], "little")
        if declared and declared > path.stat().st_size:
            raise CorruptImageError(path, "truncated BMP (shorter than its header says)")


def probe(path: str | Path, max_megapixels: float | None = None) -> ImageInfo:
    """Format, store extension and displayed size of an image, without decoding pixels.

    Raises an :class:`~itagger_lib.errors.ImageError` subclass naming ``path`` for
    unreadable, empty, truncated, unsupported or over-large files.
    """
    path = Path(path)
    check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as img:
                    fmt = (img.format or "").upper()
                    width, height = img.size
                    deep = _DEEP_MODES.get(img.mode)  # exact: "I;16" is 16-bit, read fine
                    orientation = 1
                    if fmt in SUPPORTED_FORMATS:
                        try:
                            orientation = int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
                        except Exception:
                            orientation = 1
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError as exc:
        if _float_tiff(path):
            raise UnsupportedFormatError(path, NOT_DISPLAYABLE.format(what="a floating-point TIFF")) from exc
        suffix = path.suffix.lower()
        if suffix in UNSUPPORTED_IMAGE_SUFFIXES:
            raise UnsupportedFormatError(
                path, f"{suffix} images are not supported; convert to JPEG, PNG, WebP or TIFF"
            ) from exc
        raise CorruptImageError(
            path, "not a readable image (unknown or damaged content); check the file"
        ) from exc
    except OSError as exc:
        raise CorruptImageError(path, f"damaged image header ({exc}); re-copy the file") from exc
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            path,
            f"format {fmt or 'unknown'} is not supported (supported: JPEG, PNG, WebP, TIFF, BMP); "
            "convert the file",
        )
    if deep:
        raise UnsupportedFormatError(path, NOT_DISPLAYABLE.format(what=f"a {deep}"))
    if width <= 0 or height <= 0:
        raise CorruptImageError(path, f"header gives an impossible size {width}x{height}")
    if max_megapixels is not None and width * height > max_megapixels * 1e6:
        raise ImageTooLargeError(
            path,
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{max_megapixels:g} (a possible decompression bomb); if the image is genuine, raise "
            "ITAGGER_MAX_MEGAPIXELS",
        )
    _check_structure(path, fmt)
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(fmt, SUPPORTED_FORMATS[fmt], width, height, orientation)


def reduced_decode_flag(long_side: int, target_long_side: int | None) -> int:
    """The OpenCV imread flag that decodes at 1/2, 1/4 or 1/8 size while staying >= target."""
    if not target_long_side:
        return cv2.IMREAD_COLOR
    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_COLOR_8),
        (4, cv2.IMREAD_REDUCED_COLOR_4),
        (2, cv2.IMREAD_REDUCED_COLOR_2),
    ):
        if long_side // factor >= target_long_side:
            return flag
    return cv2.IMREAD_COLOR


_JPEG_MAGIC = b"\xff\xd8\xff"
# OpenCV >= 4.11 decodes straight to RGB (libjpeg-turbo writes RGB; other formats are
# converted once): the same pixels as a BGR decode and a channel swap, without the swap.
_IMREAD_COLOR_RGB: int | None = getattr(cv2, "IMREAD_COLOR_RGB", None)


def imread_rgb(path: Path, flag: int) -> np.ndarray | None:
    """``cv2.imread`` with an ``IMREAD_COLOR``/``IMREAD_REDUCED_COLOR_*`` flag, as RGB."""
    if _IMREAD_COLOR_RGB is not None:
        return cv2.imread(str(path), (flag & ~cv2.IMREAD_COLOR) | _IMREAD_COLOR_RGB)
    bgr = cv2.imread(str(path), flag)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _is_jpeg(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(3) == _JPEG_MAGIC
    except OSError:
        return False


def decode_rgb(path: str | Path, long_side: int | None = None, size_hint: int | None = None) -> np.ndarray:
    """Decode ``path`` to RGB ``uint8`` with EXIF orientation applied, at reduced size if lossless.

    For a JPEG whose stored long side ``size_hint`` is known, OpenCV's DCT-domain reduction
    (``IMREAD_REDUCED_COLOR_2/4/8``) is used with the largest factor that keeps the decoded
    long side >= ``long_side``; other formats are decoded at full size (OpenCV would reduce
    them with bilinear resampling, not area averaging). OpenCV applies the EXIF orientation
    for the reduced flags as for ``IMREAD_COLOR`` (checked in ``tests/science``).

    Raises
    ------
    CorruptImageError, UnreadableFileError
        Naming ``path`` when it cannot be read or decoded.
    """
    path = Path(path)
    flag = cv2.IMREAD_COLOR
    jpeg = _is_jpeg(path)
    if size_hint and long_side and jpeg:
        flag = reduced_decode_flag(int(size_hint), long_side)
    if not jpeg and _has_alpha(path):
        return _composited(path)
    rgb = imread_rgb(path, flag)
    if rgb is None:
        check_readable(path)
        if _float_tiff(path) or _mode(path) in _DEEP_MODES:
            raise UnsupportedFormatError(path, NOT_DISPLAYABLE.format(what="a floating-point or 32-bit"))
        raise CorruptImageError(
            path,
            "cannot be decoded; the file is damaged or not an image (re-copy it, or re-ingest the original)",
        )
    return rgb


def _mode(path: Path) -> str | None:
    try:
        with Image.open(path) as img:
            return str(img.mode)
    except Exception:  # any header Pillow cannot read: the caller decides
        return None


def _has_alpha(path: Path) -> bool:
    """Whether the header declares transparency (an alpha channel or a transparent colour)."""
    try:
        with Image.open(path) as img:
            return img.mode in _ALPHA_MODES or "transparency" in img.info
    except Exception:  # not readable by Pillow: OpenCV's decode reports it
        return False


def _composited(path: Path) -> np.ndarray:
    """The image composited onto :data:`ALPHA_BACKGROUND`, EXIF orientation applied, as RGB."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                rgba = np.asarray(ImageOps.exif_transpose(img).convert("RGBA"), dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(path, f"cannot be decoded ({exc}); re-copy the file") from exc
    alpha = rgba[..., 3:] / 255.0
    background = np.asarray(ALPHA_BACKGROUND, dtype=np.float32)
    return np.rint(rgba[..., :3] * alpha + background * (1.0 - alpha)).astype(np.uint8)


def _float_tiff(path: Path) -> bool:
    """Whether ``path`` is a TIFF whose first image has IEEE floating-point samples (tag 339,
    SampleFormat, = 3); TIFFs give every sample the same format, so the first value tells."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            end = {b"II": "<", b"MM": ">"}.get(head[:2])
            if end is None or struct.unpack(end + "H", head[2:4])[0] != 42:
                return False
            handle.seek(struct.unpack(end + "I", head[4:8])[0])
            (count,) = struct.unpack(end + "H", handle.read(2))
            entries = handle.read(12 * min(count, 512))
            for i in range(0, len(entries) - 11, 12):
                tag, kind, n = struct.unpack(end + "HHI", entries[i : i + 8])
                if tag != 339 or kind != 3:
                    continue
                if n > 2:  # the values do not fit in the entry: it holds their offset
                    handle.seek(struct.unpack(end + "I", entries[i + 8 : i + 12])[0])
                    value = handle.read(2)
                else:
                    value = entries[i + 8 : i + 10]
                return len(value) == 2 and struct.unpack(end + "H", value)[0] == 3
    except (OSError, struct.error):
        return False
    return False


def load_rgb(path: str | Path, long_side: int | None = None, *, size_hint: int | None = None) -> np.ndarray:
    """:func:`decode_rgb`, then resized (area interpolation, never upscaled) to ``long_side``."""
    rgb = decode_rgb(path, long_side, size_hint)
    if long_side:
        rgb = fit_long_side(rgb, long_side)
    return rgb


def fitted_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled to a long side of at most ``long_side`` (never up).

    The scale is ``min(1, long_side / max(width, height))``; sides are rounded to the
    nearest integer and are at least 1.
    """
    scale = long_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Resize with area interpolation so the long side is at most ``long_side`` (no upscaling)."""
    height, width = rgb.shape[:2]
    size = fitted_size(width, height, long_side)
    if size == (width, height):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB array as JPEG bytes (for display caches and VLM requests)."""
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise CorruptImageError("<array>", "could not encode the image as JPEG")
    return buffer.tobytes()

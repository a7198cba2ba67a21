#!/usr/bin/env python3
"""Generates the hostile and odd inputs of test/unit/test_pipeline.c.

    python3 test/hostile/make_inputs.py OUTDIR

Nothing binary is committed: every file is made here from Python's standard
library, the `vips` command-line tool and `exiftool` (orientation, camera
and GPS tags). The expectations (processed, or which reason) live in the C
test; this script only makes bytes. Re-running rewrites every file.
"""
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib

OUT = sys.argv[1]
TMP = os.path.join(OUT, "tmp")


def path(name):
    return os.path.join(OUT, name)


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def vips(*args):
    run("vips", *args)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def ppm(name, w, h, pixel):
    """A P6 file from pixel(x, y) -> (r, g, b)."""
    rows = bytearray()
    for y in range(h):
        for x in range(w):
            rows += bytes(pixel(x, y))
    with open(name, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h) + rows)


def photo(x, y, w=480, h=320):
    """A picture with structure: gradients, a red top-left marker block."""
    if x < w // 6 and y < h // 6:
        return (230, 20, 20)
    return ((x * 255) // w, (y * 255) // h, ((x + y) * 3) % 256)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_raw(w, h, depth, colour, idat):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


def png_bomb(w, h):
    """A 1-bit grey PNG of zeros, streamed through zlib: a few KB for w*h
    pixels."""
    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (w + 7) // 8)
    out = bytearray()
    for _ in range(h):
        out += z.compress(row)
    out += z.flush()
    return png_raw(w, h, 1, 0, bytes(out))


def lzw_fixed(pixels):
    """GIF LZW with code size 2, a clear code before every second literal so
    the code width stays 3 bits (valid, if not compact)."""
    clear, end = 4, 5
    codes = []
    for i, p in enumerate(pixels):
        if i % 2 == 0:
            codes.append(clear)
        codes.append(p)
    codes.append(end)
    bits, nbits, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += 3
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    blocks = bytearray([2])
    for i in range(0, len(out), 255):
        chunk = out[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks + b"\x00")


def gif_anim(w, h, frames):
    """An animated GIF: 4-colour palette, each frame one flat colour."""
    head = b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF1, 0, 0)
    head += bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    head += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    body = bytearray()
    for f in range(frames):
        body += b"\x21\xf9\x04\x04" + struct.pack("<H", 5) + b"\x00\x00"
        body += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
        body += lzw_fixed([f % 4] * (w * h))
    return head + bytes(body) + b"\x3b"


def tiff_header(w, h):
    """A little-endian TIFF whose one IFD declares w x h 8-bit grey with a
    single tiny strip."""
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h),
               (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 24) + b"\x00" * 16 + ifd


def bmp(w, h):
    """A 24-bit BMP (a format libvips reads only through ImageMagick)."""
    row = (w * 3 + 3) & ~3
    pixels = b"".join(bytes([(x * 7) % 256, y % 256, 128] * 1) for y in range(h)
                      for x in range(w))
    data = b""
    for y in range(h):
        line = pixels[y * w * 3:(y + 1) * w * 3]
        data += line + b"\x00" * (row - w * 3)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(data), 0, 0, 54) + info + data


# Display orientation N applied to the stored pixels gives the upright
# picture; to make a file that shows `photo` upright, store the inverse.
def stored_pixel(n, w, h):
    """(stored width, stored height, f(x, y) -> upright coordinates)."""
    if n == 1:
        return w, h, lambda x, y: (x, y)
    if n == 2:
        return w, h, lambda x, y: (w - 1 - x, y)
    if n == 3:
        return w, h, lambda x, y: (w - 1 - x, h - 1 - y)
    if n == 4:
        return w, h, lambda x, y: (x, h - 1 - y)
    if n == 5:
        return h, w, lambda x, y: (y, x)
    if n == 6:
        return h, w, lambda x, y: (w - 1 - y, x)
    if n == 7:
        return h, w, lambda x, y: (w - 1 - y, h - 1 - x)
    return h, w, lambda x, y: (y, h - 1 - x)


def exiftool(*args):
    run("exiftool", "-q", "-overwrite_original", *args)


def main():
    if not shutil.which("vips") or not shutil.which("exiftool"):
        sys.exit("make_inputs.py needs the vips and exiftool commands (scripts/deps.sh)")
    os.makedirs(TMP, exist_ok=True)
    base = os.path.join(TMP, "photo.ppm")
    ppm(base, 480, 320, photo)

    # Ordinary inputs of every allowed format and common odd variants.
    vips("copy", base, path("jpeg_baseline.jpg[Q=90]"))
    vips("copy", base, path("jpeg_progressive.jpg[Q=85,interlace]"))
    vips("colourspace", base, path("jpeg_grey.jpg"), "b-w")
    vips("copy", base, path("png_rgb.png"))
    vips("colourspace", base, os.path.join(TMP, "rgb16.v"), "rgb16")
    vips("copy", os.path.join(TMP, "rgb16.v"), path("png_16bit.png"))
    vips("copy", base, path("png_palette.png[palette,Q=60]"))
    vips("colourspace", base, os.path.join(TMP, "grey.v"), "b-w")
    vips("bandjoin_const", os.path.join(TMP, "grey.v"), path("png_grey_alpha.png"), "128")
    vips("bandjoin_const", base, path("png_rgba.png"), "200")
    vips("copy", base, path("webp_lossy.webp[Q=70]"))
    vips("copy", base, path("gif_static.gif"))
    vips("copy", base, path("tiff_rgb.tif"))
    vips("copy", base, path("avif.avif[Q=50]"))
    vips("colourspace", base, path("jpeg_cmyk.jpg"), "cmyk")
    # An embedded ICC profile (sRGB, attached by icc_transform).
    vips("icc_transform", base, path("jpeg_srgb_icc.jpg"), "srgb", "--input-profile", "srgb")
    vips("black", path("png_1x1.png"), "1", "1")
    # Flat black: a watermark shows (test_processors.c).
    vips("black", path("png_dark.png"), "400", "300", "--bands", "3")
    # A different picture (phash distance) that does not compress.
    vips("gaussnoise", os.path.join(TMP, "noise.v"), "480", "320", "--sigma", "60")
    vips("cast", os.path.join(TMP, "noise.v"), path("png_noise.png"), "uchar")
    ppm(os.path.join(TMP, "wide.ppm"), 6000, 12, lambda x, y: (x % 256, 90, 200))
    vips("copy", os.path.join(TMP, "wide.ppm"), path("png_panorama.png"))
    # A PNG misnamed .jpg: formats are sniffed, names and content types ignored.
    shutil.copy(path("png_rgb.png"), path("png_named_jpg.jpg"))

    # EXIF: the 8 orientations, each stored so that it displays as `photo`.
    for n in range(1, 9):
        w, h, f = stored_pixel(n, 480, 320)
        tmp = os.path.join(TMP, "o%d.ppm" % n)
        ppm(tmp, w, h, lambda x, y, f=f: photo(*f(x, y)))
        vips("copy", tmp, path("jpeg_orientation_%d.jpg[Q=90]" % n))
        exiftool("-n", "-Orientation=%d" % n, path("jpeg_orientation_%d.jpg" % n))
    # Camera and location: make/model must be reported, GPS never.
    vips("copy", base, path("jpeg_gps_camera.jpg"))
    exiftool("-Make=Canon", "-Model=Canon EOS 5D", "-GPSLatitude=48.8584",
             "-GPSLatitudeRef=N", "-GPSLongitude=2.2945", "-GPSLongitudeRef=E",
             "-GPSAltitude=35", "-XMP:City=Paris", path("jpeg_gps_camera.jpg"))

    # Truncated and damaged files.
    for name in ("jpeg_baseline.jpg", "png_rgb.png"):
        data = open(path(name), "rb").read()
        ext = name.rsplit(".", 1)[1]
        write("truncated_%s.%s" % (name.split("_")[0], ext), data[:len(data) // 2])
    data = bytearray(open(path("png_rgb.png"), "rb").read())
    data[len(data) // 2] ^= 0xFF
    write("png_bad_crc.png", bytes(data))
    write("jpeg_header_only.jpg", open(path("jpeg_baseline.jpg"), "rb").read()[:200])

    # Declared dimensions far beyond the limits, in a few hundred bytes.
    write("png_header_100000x100000.png", png_raw(100000, 100000, 8, 0, zlib.compress(b"\0" * 64)))
    jpg = bytearray(open(path("jpeg_baseline.jpg"), "rb").read())
    sof = jpg.find(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    write("jpeg_header_65000x65000.jpg", bytes(jpg))
    write("tiff_header_100000x100000.tif", tiff_header(100000, 100000))
    # Pixel bombs: valid images that decompress to far more than they weigh.
    write("png_bomb_30000x30000.png", png_bomb(30000, 30000))
    vips("black", path("webp_bomb_16000x16000.webp[lossless]"), "16000", "16000")
    # Large but within limits (81 Mpx): decoded streaming, RSS stays low.
    write("png_large_9000x9000.png", png_bomb(9000, 9000))

    # Animations.
    write("gif_3000_frames.gif", gif_anim(16, 16, 3000))
    write("gif_anim_12.gif", gif_anim(64, 48, 12))
    vips("copy", path("gif_anim_12.gif[n=-1]"), path("webp_anim_12.webp"))

    # Formats only untrusted loaders read.
    write("svg.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
          b'width="100000" height="100000"><circle cx="50" cy="50" r="40"/></svg>')
    write("pdf.pdf", b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
          b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
          b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
          b"trailer<</Root 1 0 R>>\n%%EOF\n")
    write("bmp_magick_only.bmp", bmp(64, 48))
    vips("copy", base, path("ppm_vips_only.ppm"))
    vips("copy", base, path("fits_vips_only.fits"))

    # Not images at all.
    write("empty.jpg", b"")
    write("random_4k.bin", random.Random(4).randbytes(4096))
    write("html_named_jpg.jpg", b"<!doctype html><html><body>not a picture</body></html>\n")
    write("jpeg_magic_then_junk.jpg", b"\xff\xd8\xff\xe0" + random.Random(5).randbytes(2000))

    shutil.rmtree(TMP)


main()

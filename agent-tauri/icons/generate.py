#!/usr/bin/env python3
"""Generates the Bot-Mox Agent icons with the Python standard library only
(no Pillow needed): the app icon set used for bundling and one tray icon per
connection state. Output is deterministic; the PNG/ICO files are committed.

    python3 agent-tauri/icons/generate.py

Tray icons differ by colour AND by shape, so states stay distinguishable for
colour-blind users and on monochrome panels:

    online       green filled disc
    connecting   amber ring with a gap (a spinner frame)
    unreachable  orange disc with a horizontal bar
    error        red disc with an exclamation mark
    revoked      dark grey disc with a diagonal slash
    paused       blue disc with two vertical bars
    not_paired   grey ring (hollow)
"""

import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png_bytes(w, h, pixels):
    """pixels: list of rows, each a list of (r, g, b, a) tuples."""
    raw = bytearray()
    for row in pixels:
        raw.append(0)  # filter: none
        for r, g, b, a in row:
            raw += bytes((r, g, b, a))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def ico_bytes(images):
    """images: list of (size, png bytes). PNG-compressed ICO (Vista+)."""
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries = b""
    data = b""
    for size, png in images:
        dim = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset + len(data))
        data += png
    return header + entries + data


def render(size, shade):
    """shade(x, y) -> (r, g, b, a) in unit coordinates (0..1), 4x4 supersampled."""
    ss = 4
    rows = []
    for py in range(size):
        row = []
        for px in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    x = (px + (sx + 0.5) / ss) / size
                    y = (py + (sy + 0.5) / ss) / size
                    r, g, b, a = shade(x, y)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            n = ss * ss
            a = acc[3] / n
            if a > 0:
                px_rgb = tuple(int(round(c / acc[3])) for c in acc[:3])
            else:
                px_rgb = (0, 0, 0)
            row.append(px_rgb + (int(round(a * 255)),))
        rows.append(row)
    return png_bytes(size, size, rows)


def disc(x, y, r=0.42):
    return math.hypot(x - 0.5, y - 0.5) <= r


def ring(x, y, r_out=0.42, r_in=0.27):
    d = math.hypot(x - 0.5, y - 0.5)
    return r_in <= d <= r_out


WHITE = (255, 255, 255, 1.0)
CLEAR = (0, 0, 0, 0.0)


def tray_shader(state):
    colours = {
        "online": (22, 163, 74),
        "connecting": (217, 160, 0),
        "unreachable": (234, 108, 10),
        "error": (220, 38, 38),
        "revoked": (75, 85, 99),
        "paused": (37, 99, 235),
        "not_paired": (140, 140, 140),
    }
    c = colours[state] + (1.0,)

    def shade(x, y):
        if state == "not_paired":
            return c if ring(x, y, 0.42, 0.30) else CLEAR
        if state == "connecting":
            if not ring(x, y, 0.42, 0.26):
                return CLEAR
            ang = math.degrees(math.atan2(y - 0.5, x - 0.5)) % 360
            return CLEAR if 300 <= ang <= 360 else c
        if not disc(x, y):
            return CLEAR
        if state == "unreachable" and abs(y - 0.5) <= 0.07 and abs(x - 0.5) <= 0.25:
            return WHITE
        if state == "error":
            if abs(x - 0.5) <= 0.065 and 0.24 <= y <= 0.58:
                return WHITE
            if math.hypot(x - 0.5, y - 0.71) <= 0.075:
                return WHITE
        if state == "revoked":
            # a slash from bottom-left to top-right
            if abs((x - 0.5) + (y - 0.5)) / math.sqrt(2) <= 0.06 and disc(x, y, 0.30):
                return WHITE
        if state == "paused":
            if 0.26 <= y <= 0.74 and (0.33 <= x <= 0.44 or 0.56 <= x <= 0.67):
                return WHITE
        return c

    return shade


def app_shader(x, y):
    """Rounded navy square, teal ring, white centre dot (the 'agent eye')."""
    m, rad = 0.06, 0.2
    # rounded-rectangle test
    qx = max(abs(x - 0.5) - (0.5 - m - rad), 0.0)
    qy = max(abs(y - 0.5) - (0.5 - m - rad), 0.0)
    if math.hypot(qx, qy) > rad:
        return CLEAR
    d = math.hypot(x - 0.5, y - 0.5)
    if d <= 0.11:
        return WHITE
    if 0.22 <= d <= 0.31:
        return (45, 212, 191, 1.0)
    return (15, 23, 42, 1.0)


def write(path, data):
    with open(os.path.join(HERE, path), "wb") as f:
        f.write(data)


def main():
    os.makedirs(os.path.join(HERE, "tray"), exist_ok=True)
    for size, name in [(32, "32x32.png"), (128, "128x128.png"), (256, "128x128@2x.png"), (512, "icon.png")]:
        write(name, render(size, app_shader))
    write("icon.ico", ico_bytes([(s, render(s, app_shader)) for s in (16, 32, 48, 256)]))
    for state in ["online", "connecting", "unreachable", "error", "revoked", "paused", "not_paired"]:
        write(os.path.join("tray", f"{state}.png"), render(32, tray_shader(state)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the hand-made seeds of the VMM and CLI fuzz targets into fuzz/corpus/<target>/
(docs/fuzzing.md). Run from anywhere; existing seeds of the same name are overwritten.
The regmodel targets' seeds were written by hand; the `regress-*` inputs come from crashes."""

import os
import re
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(ROOT)


def put(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- machine_file: machine text, then NUL and the description fuzz.toml -------------
for f in sorted(os.listdir(os.path.join(REPO, "tests/machines"))):
    if f.endswith(".toml"):
        with open(os.path.join(REPO, "tests/machines", f)) as fh:
            text = fh.read()
        # The body reads descriptions only from its scratch directory: the first one the
        # machine names becomes fuzz.toml, after the NUL.
        m = re.search(r'description = "(devices/[^"]+)"', text)
        if m:
            with open(os.path.join(REPO, "tests/machines", m.group(1))) as fh:
                desc = fh.read()
            text = text.replace(m.group(0), 'description = "fuzz.toml"') + "\0" + desc
        put("machine_file", "tests-" + f, text)

SAMPLE = """[machine]
memory_mib = 256
vcpus = 2
firmware = "demo.elf"

[[bus]]
name = "platform"
compatible = "simple-bus"
mmio = { base = 0xd0000000, size = 0x100000 }

[[bus]]
name = "isa"
compatible = "isa"
pio = { base = 0x200, size = 0x100 }

[[device]]
name = "testdev"
model = "regfile"
bus = "platform"
compatible = ["mmiolab,testdev", "generic"]
irq = 5
mmio = [{ base = 0xd0001000, size = 0x1000, windows = [{ name = "regs", offset = 0, size = 0x10 }] }]

[device.dt]
reg_names = ["regs"]
properties = { clock-frequency = 1843200, status = "okay", phandle-ref = "&testdev" }

[[device]]
name = "cnt"
model = "counter"
bus = "isa"
compatible = "mmiolab,counter"
pio = [{ base = 0x2e0, size = 8 }]
"""
put("machine_file", "sample.toml", SAMPLE)

DESCRIBED = """[machine]
kernel = "bzImage"
cmdline = "console=ttyS0"

[[device]]
name = "uart"
description = "uart.toml"
reg_shift = 2
irq = [6, 7]
compatible = "mmiolab,uart"
mmio = [{ base = 0xd0002000, size = 0x1000 }]
pio = [{ base = 0x2f8, size = 0x40 }]
fifo = { rx = { from = "stdin" }, tx = { to = "stdout" } }

[device.check]
allow = ["reserved-bits"]

[[device]]
name = "mem"
description = "memory.toml"
mmio = [{ base = 0xd0010000, size = 0x4000 }]

[[device]]
name = "bk"
description = "banked.toml"
mmio = [{ base = 0xd0020000, size = 0x1000 }]

[[device]]
name = "st"
description = "storm.toml"
pio = [{ base = 0x340, size = 0x20 }]

[[device]]
name = "u16550"
model = "uart16550"
pio = [{ base = 0x3e8, size = 8 }]
irq = 3

[[device]]
name = "dma"
svd = { file = "toy.svd", peripheral = "DMA" }
description = "overlay.toml"
mmio = [{ base = 0xd0030000, size = 0x1000 }]

[[dt_node]]
name = "leds"
properties = { compatible = "gpio-leds", gpios = ["&uart", 1, 0] }

[[dt_node.child]]
name = "led0"
properties = { label = "green", default-on = true }
"""
put("machine_file", "described.toml", DESCRIBED)

FUZZDESC = """[[device]]
name = "d"
description = "fuzz.toml"
irq = 9
compatible = "x,y"
mmio = [{ base = 0xd0000000, size = 0x1000 }]
\0[device]
name = "x"
size = 0x100

[[fifo]]
name = "q"
depth = 4

[[register]]
name = "R"
offset = 0
push = "q"
pop = "q"

[[interrupt]]
name = "i"
when = "q.full"
line = 0
"""
put("machine_file", "fuzz-description.toml", FUZZDESC)
for name in os.listdir(os.path.join(REPO, "models")):
    if name.endswith(".toml") and name != "README.md":
        with open(os.path.join(REPO, "models", name), "rb") as fh:
            put("machine_file", "model-" + name,
                b'[[device]]\nname = "m"\ndescription = "fuzz.toml"\nmmio = [{ base = 0xd0000000, size = 0x100000 }]\n\0' + fh.read())
put("machine_file", "bad-irq.toml", "[[device]]\nname = \"a\"\nmodel = \"regfile\"\nirq = 2\nmmio = [{ base = 0xd0000000, size = 0x10 }]\n")
put("machine_file", "pio-in-kernel.toml", "[[device]]\nname = \"a\"\nmodel = \"counter\"\npio = [{ base = 0x40, size = 4 }]\n")


# ---- payload: mode, memory, load address, initrd length, file -------------------------
PT_LOAD, PT_NOTE = 1, 4
EXIT7 = bytes([0xB0, 0x07, 0xE6, 0xF4, 0xEB, 0xFE])


def elf(bits, machine, entry, phdrs, payload, at=0x100):
    eh, ph = (64, 56) if bits == 64 else (52, 32)
    f = bytearray(at)
    f[0:4] = b"\x7fELF"
    f[4] = 2 if bits == 64 else 1
    f[5] = 1
    f[6] = 1
    f[16:18] = struct.pack("<H", 2)
    f[18:20] = struct.pack("<H", machine)
    f[20:24] = struct.pack("<I", 1)
    n = len(phdrs)
    if bits == 64:
        f[24:32] = struct.pack("<Q", entry)
        f[32:40] = struct.pack("<Q", eh)
        f[52:58] = struct.pack("<HHH", eh, ph, n)
    else:
        f[24:28] = struct.pack("<I", entry)
        f[28:32] = struct.pack("<I", eh)
        f[40:46] = struct.pack("<HHH", eh, ph, n)
    for i, (t, off, pa, fs, ms) in enumerate(phdrs):
        a = eh + i * ph
        if bits == 64:
            f[a:a + 56] = struct.pack("<IIQQQQQQ", t, 7, off, pa, pa, fs, ms, 0x1000)
        else:
            f[a:a + 32] = struct.pack("<IIIIIIII", t, off, pa, pa, fs, ms, 7, 0x1000)
    return bytes(f) + payload


def pvh(bits, entry):
    payload = EXIT7 + bytes(10)
    note_at = 0x100 + len(payload)
    payload += struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", entry)
    return elf(bits, 62 if bits == 64 else 3, 0x100000,
               [(PT_LOAD, 0x100, 0x100000, 6, 0x1000), (PT_NOTE, note_at, 0, 20, 0)], payload)


def bzimage(init_size, kernel_bytes):
    b = bytearray(1024 + kernel_bytes)
    b[0x1F1] = 1
    b[0x1FE:0x200] = struct.pack("<H", 0xAA55)
    b[0x202:0x206] = b"HdrS"
    b[0x206:0x208] = struct.pack("<H", 0x020F)
    b[0x211] = 1
    b[0x214:0x218] = struct.pack("<I", 0x100000)
    b[0x22C:0x230] = struct.pack("<I", 0x37FFFFFF)
    b[0x236:0x238] = struct.pack("<H", 1)
    b[0x260:0x264] = struct.pack("<I", init_size)
    return bytes(b)


def payload(mode, mem, load, initrd, data):
    return bytes([mode, mem, load]) + struct.pack("<H", initrd) + data


fw64 = elf(64, 62, 0x100000, [(PT_LOAD, 0x100, 0x100000, 6, 0x2000)], EXIT7)
fw32 = elf(32, 3, 0x100000, [(PT_LOAD, 0x100, 0x100000, 6, 6)], EXIT7)
put("payload", "firmware-elf64", payload(0, 0, 0, 0, fw64))
put("payload", "firmware-elf32", payload(0, 1, 0, 0, fw32))
put("payload", "firmware-two-segments", payload(0, 0, 0, 0, elf(64, 62, 0x200004, [
    (PT_LOAD, 0x100, 0x100000, 6, 0x1000), (PT_LOAD, 0x100, 0x200000, 6, 0x10), (PT_NOTE, 0x100, 0, 6, 0)], EXIT7)))
put("payload", "firmware-in-gap", payload(0, 2, 0, 0, elf(64, 62, 0xc0000000, [(PT_LOAD, 0x100, 0xc0000000, 6, 6)], EXIT7)))
put("payload", "firmware-high", payload(0, 2, 0, 0, elf(64, 62, 0x100000000, [(PT_LOAD, 0x100, 0x100000000, 6, 6)], EXIT7)))
put("payload", "flat", payload(1, 0, 0, 0, EXIT7))
put("payload", "flat-at", payload(1, 0, 1, 0, b"\x10\x00" + EXIT7))
put("payload", "pvh64", payload(2, 1, 0, 0, pvh(64, 0x100000)))
put("payload", "pvh32-initrd", payload(3, 1, 0, 0x1000, pvh(32, 0x100000)))
put("payload", "bzimage", payload(2, 1, 0, 0, bzimage(0x10000, 64)))
put("payload", "bzimage-initrd-cmdline", payload(4, 0, 0, 0x2000, bzimage(0x100000, 32)))
put("payload", "not-elf", payload(0, 0, 0, 0, b"MZ\x90\x00"))


# ---- ktap: a console log -----------------------------------------------------------------
put("ktap", "log", """[    0.000000] Linux version 6.1\r
ok 1 not a test yet
[    3.140000] KTAP version 1
[    3.150000] 1..2
[    3.160000]     # Subtest: mmio_fixed
[    3.170000]     KTAP version 1
[    3.180000]     ok 1 request_mem_region
[    3.190000] ok 1 mmio_fixed
[    3.200000]     not ok 1 platform_get_resource_io
not ok 2 platform_pio # SKIP no PCI
mmiolab: begin /proc/iomem
d0001000-d0001fff : d0001000.testdev testdev@d0001000
mmiolab: end /proc/iomem
mmiolab: begin /proc/ioports
02e0-02e7 : piodev@2e0
mmiolab: end /proc/ioports
""")
put("ktap", "plain", "KTAP version 1\n1..3\nok 1 a\nnot ok 2 b # TODO later\nok 3 c # SKIP\n")
put("ktap", "timestamps", "[1.0] KTAP version 1\r\n[ 2.5] 1..1\r\n[abc] ok 1 x\r\n[    9.9]     # diag\n[9.99] ok 1 y # \n")
put("ktap", "unterminated-dump", "mmiolab: begin /proc/ioports\n0000-001f : dma1\nKTAP version 1\nok 1 z\n")


# ---- trace_writer: flags, names, filters, operations -------------------------------------
def s(text):
    b = text.encode()
    return bytes([len(b)]) + b


names = [s("testdev@d0001000"), s("uart"), s('q"uo\\te\n\t\x01'), s("CH[3]"), s("é∑😀"), bytes([0xF3]) + b"ab" + bytes([40])]
head = bytes([len(names) - 1]) + b"".join(names)
ops = b""
ops += bytes([0, 0, 1]) + bytes([0]) + bytes([1, 0x10]) + bytes([4]) + struct.pack("<Q", 0x12345678) + bytes([0, 0])
ops += bytes([2, 0, 1]) + struct.pack("<QQ", 0xd0001010, 0x10) + bytes([4]) + struct.pack("<Q", 0xff) + bytes([0, 3, 3])
ops += bytes([0, 1, 1, 2]) + struct.pack("<Q", 5) + bytes([0]) + bytes([4] + [n % 13 for n in range(4)] * 4)
ops += bytes([4, 1, 5, 6, 1, 2, 3, 8, 9, 12])
ops += bytes([5, 2, 0, 1, 3, 0, 1]) + struct.pack("<Q", 0x3f8) + bytes([1]) + struct.pack("<I", 2) + bytes([1])
ops += bytes([6, 3, 7, 0, 0x10, 0x00, 7, 2])
for flags in (0, 1, 2, 3):
    put("trace_writer", f"ops-{flags}", bytes([flags]) + (struct.pack("<H", 40) if flags & 2 else b"") + head + bytes([1, 0, 0]) + struct.pack("<Q", 1000) + bytes([1, 0, 1, 0] * 6) + ops * 3)
put("trace_writer", "filters", bytes([0]) + head + bytes([2, 0, 1]) + struct.pack("<Q", 0) + bytes([1] * 12) + ops)
put("trace_writer", "long-names", bytes([1, 1, 0xFF]) + b"\\\"\x7f\xc3\xa9\xff\xe2\x82\xac\x00abcdefg" + bytes([255]) + bytes([0]) + struct.pack("<Q", 7) + ops * 2)


# ---- bus_devices: flags, regions, operations ---------------------------------------------
def region(space, kind, model, parent_sel, parent_idx, base_sel, base, size_sel, size):
    out = bytes([space, kind])
    if kind % 8 >= 5:
        out += bytes([model])
    out += bytes([parent_sel])
    if parent_sel % 3:
        out += bytes([parent_idx])
    out += bytes([base_sel]) + base + bytes([size_sel]) + size
    return out


regions = [
    region(0, 0, 0, 0, 0, 0, struct.pack("<H", 0), 0, b""),            # container at 0xd0000000
    region(0, 5, 0, 1, 0, 0, struct.pack("<H", 0x10) + bytes([0]), 0, b""),  # uart inside it
    region(0, 5, 1, 0, 0, 1, struct.pack("<H", 0x200), 0, b""),          # banked
    region(0, 6, 2, 0, 0, 1, struct.pack("<H", 0x400), 0, b""),          # memory
    region(1, 7, 3, 0, 0, 0, struct.pack("<H", 0x300), 0, b""),          # storm on ports
    region(0, 3, 0, 0, 0, 1, struct.pack("<H", 0x800), 0, b""),          # regfile
    region(1, 4, 0, 0, 0, 0, struct.pack("<H", 0x280), 2, bytes([8])),   # counter on ports
    region(0, 2, 0, 1, 2, 0, struct.pack("<H", 4) + bytes([0]), 2, bytes([8])),  # window in the uart
]
for m in range(4, 11):
    regions.append(region(0, 5, m, 0, 0, 1, struct.pack("<H", 0x1000 + 0x100 * m), 0, b""))
regbytes = bytes([len(regions)]) + b"".join(regions)


def acc(op, delta, sel, pick, end, width, value):
    out = bytes([op, delta & 0xFF, sel])
    if sel % 4 < 2:
        out += bytes([pick, end])
    elif sel % 4 == 2:
        out += struct.pack("<H", pick)
    else:
        out += struct.pack("<Q", pick)
    return out + bytes([width]) + struct.pack("<Q", value)


ops = b""
for i in range(24):
    ops += acc(i % 10 | (0x20 if i % 3 == 0 else 0) | (0x10 if i % 5 == 0 else 0), i - 4, i % 4, i * 7, i & 1, i % 8, 0x0101010101010101 * i)
ops += bytes([10, 1]) + struct.pack("<H", 20)      # 20 us
ops += bytes([12, 0, 0, 5]) + b"hello"
ops += bytes([13, 0, 1, 1])
ops += bytes([14, 1])
ops += bytes([15, 4]) + b"abcd"
ops += bytes([11, 2]) + struct.pack("<H", 5)       # 5 ms
for flags in (0, 1, 3):
    put("bus_devices", f"machine-{flags}", bytes([flags]) + regbytes + ops * 2)
put("bus_devices", "unmapped", bytes([1, 0]) + b"".join(acc(i, 0, 3, (0xfffffffffffffffa + i) & 0xffffffffffffffff, 0, i % 8, 0) for i in range(10)))
put("bus_devices", "nested-refused", bytes([0, 4]) + region(0, 3, 0, 0, 0, 0, struct.pack("<H", 0), 0, b"") + region(0, 3, 0, 1, 0, 0, struct.pack("<H", 1) + bytes([0]), 2, bytes([4])) + region(1, 2, 0, 0, 0, 3, struct.pack("<Q", 0xfff0), 1, struct.pack("<H", 0x20)) + region(0, 0, 0, 0, 0, 3, struct.pack("<Q", 0xffffffffffffff00), 3, struct.pack("<Q", 0x200)) + ops)

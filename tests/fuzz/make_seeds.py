"""Writes the seed corpora of the fuzz targets into tests/fuzz/seeds/<target>/ from the test fixtures and a
few synthesized files (any Python 3 with numpy and Pillow; run once, from anywhere). The fuzzer's minimized corpora,
grown from these, are committed under tests/fuzz/corpus/<target>/.
"""

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

FUZZ = Path(__file__).resolve().parent
FIX = FUZZ.parent / "fixtures"
OUT = FUZZ / "seeds"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def copy(target, paths):
    for p in paths:
        put(target, f"{p.parent.name}_{p.name}", p.read_bytes())


def npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def png(image):
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def split(*parts):
    """The layout of common::split: u16 LE length before each part but the last."""
    out = b""
    for p in parts[:-1]:
        out += struct.pack("<H", len(p)) + p
    return out + parts[-1]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    copy("config_json", sorted(FIX.glob("*/*/config.json")) + sorted(FIX.glob("*/config.json")))
    copy("preprocessor_config", [FIX / "preprocess/custom_config.json"])
    put("preprocessor_config", "hf_default.json", json.dumps({
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True,
        "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225], "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": 256}}).encode())
    copy("npy", sorted(p for p in FIX.glob("preprocess/npy_*.npy")))
    for name, a in {"f16": np.arange(6, dtype="<f2").reshape(2, 3), "scalar": np.float32(1.5),
                    "empty": np.zeros((0, 4), "<f4"), "f8be": np.ones((2, 2), ">f8")}.items():
        put("npy", f"{name}.npy", npy(a))
    copy("safetensors", [FIX / "checkpoints/views_expected.safetensors"])
    copy("pth", [FIX / "checkpoints/views.pth", FIX / "depth/dinov2_linear1.pth"])
    meta = {"format": 1, "model": "m", "descriptor": "cls", "dims": 4, "count": 3, "skipped": 1,
            "shard": {"index": 0, "count": 2}, "complete": True}
    put("index_files", "folder", split(json.dumps(meta).encode(), b"a.png\nb.png\nc.png\n",
                                       b"d.png\tbroken\n", npy(np.eye(3, 4, dtype="<f4"))))
    put("hnsw", "genuine", b"\x00")
    put("hnsw", "patched", b"\x00" + struct.pack("<HB", 40, 7) + struct.pack("<HB", 300, 255))
    put("chunks", "chunk", split(b"00000000", b"ok\ta.png\nskip\tb.png\tunreadable\nok\tc.png\n",
                                 npy(np.ones((2, 4), "<f4"))))
    copy("voc_xml", sorted(FIX.glob("discovery/voc/Annotations/*.xml")))
    copy("coco_json", [FIX / "discovery/voc/coco.json"])
    put("coco_json", "small.json", json.dumps({
        "images": [{"id": 2, "file_name": "a.jpg"}, {"id": 1, "file_name": "x/b.jpg"}],
        "annotations": [{"image_id": 2, "bbox": [1.5, 2.5, 3, 4]},
                        {"image_id": 2, "bbox": [0, 0, 1, 1], "iscrowd": 1}]}).encode())
    small = [p for p in sorted(FIX.glob("preprocess/*")) if p.suffix in
             {".png", ".gif", ".bmp", ".webp", ".tiff", ".jpg"} and p.stat().st_size < 12_000]
    copy("image", small + [FIX / "discovery/voc/JPEGImages/000001.jpg"])
    labels = np.array([[0, 1, 2, 255], [2, 1, 0, 0], [1, 1, 2, 2]], np.uint8)
    for mode, image in {"L": Image.fromarray(labels, "L"),
                        "LA": Image.fromarray(np.dstack([labels, np.full_like(labels, 255)]), "LA"),
                        "I16": Image.fromarray(labels.astype("<u2") * 300),
                        "P": Image.fromarray(labels, "L").convert("P"),
                        "RGB": Image.fromarray(np.dstack([labels * 64, labels, labels]), "RGB")}.items():
        put("label_png", f"{mode}.png", png(image))


if __name__ == "__main__":
    main()

"""The dataset's reference download script (Photo Concept Bucket's download.py), with the resize it
offers applied, as the baseline for `npm run bench -- --photos`. One process, one row at a time.
Input: a TSV of id, url, caption. Output: <out>/<id>.png and <out>/<id>.txt; prints its CPU seconds as JSON.
`reference.py encode <file.ppm>...` prints the size and CPU of Pillow's default PNG of each image instead."""
import json
import time
import io
import os
import sys
import urllib.request

from PIL import Image


def resize(image, resolution):
    w, h = image.size
    k = resolution / min(w, h)
    return image.convert("RGB").resize((round(w * k / 64) * 64, round(h * k / 64) * 64), Image.LANCZOS)


def main(rows_file, out, resolution):
    os.makedirs(out, exist_ok=True)
    with open(rows_file, encoding="utf-8") as f:
        for line in f:
            id_, url, caption = line.rstrip("\n").split("\t")
            with urllib.request.urlopen(url) as r:
                if r.status != 200:
                    continue
                image = Image.open(io.BytesIO(r.read()))
            resize(image, resolution).save(os.path.join(out, f"{id_}.png"))
            with open(os.path.join(out, f"{id_}.txt"), "w", encoding="utf-8") as t:
                t.write(caption)


def encode(files):
    sizes, cpu = [], 0.0
    for f in files:
        image = Image.open(f)
        image.load()
        t = time.process_time()
        buf = io.BytesIO()
        image.save(buf, "PNG")
        cpu += time.process_time() - t
        sizes.append(len(buf.getvalue()))
    print(json.dumps({"sizes": sizes, "cpu_s": cpu}))


if __name__ == "__main__":
    if sys.argv[1] == "encode":
        encode(sys.argv[2:])
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
        print(json.dumps({"cpu_s": time.process_time()}))

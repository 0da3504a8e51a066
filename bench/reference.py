"""The dataset's reference download script (Photo Concept Bucket's download.py) as published: its rows
on `ThreadPoolExecutor()` with the default workers (min(32, cores + 4)), each downloading with
`requests.get`, saving the image as PNG on HTTP 200 and writing the caption, with the resize it offers
applied. Pillow releases the GIL while it decodes, resizes and encodes, so the pool keeps every core
busy. Where `requests` is not installed, urllib does the GET (the same one request per row).
The baseline for `npm run bench` and `bench:photos`.
Input: a TSV of id, url, caption. Output: <out>/<id>.png and <out>/<id>.txt; prints its CPU seconds as JSON.
`reference.py encode <file.ppm>...` prints the size and CPU of Pillow's default PNG of each image instead."""
import json
import time
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

try:
    import requests

    def fetch(url):
        r = requests.get(url)
        return r.status_code, r.content

except ImportError:
    import urllib.error
    import urllib.request

    def fetch(url):
        try:
            with urllib.request.urlopen(url) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, b""


def resize(image, resolution):
    w, h = image.size
    k = resolution / min(w, h)
    return image.convert("RGB").resize((round(w * k / 64) * 64, round(h * k / 64) * 64), Image.LANCZOS)


def download_and_save(row, out, resolution):
    id_, url, caption = row
    status, content = fetch(url)
    if status == 200:
        image = Image.open(io.BytesIO(content))
        resize(image, resolution).save(os.path.join(out, f"{id_}.png"))
    # As published: the caption is written whatever the download did.
    with open(os.path.join(out, f"{id_}.txt"), "w", encoding="utf-8") as t:
        t.write(caption)


def main(rows_file, out, resolution):
    os.makedirs(out, exist_ok=True)
    with open(rows_file, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    with ThreadPoolExecutor() as executor:
        for future in [executor.submit(download_and_save, row, out, resolution) for row in rows]:
            future.result()


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

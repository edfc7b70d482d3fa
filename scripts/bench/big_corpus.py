"""A corpus of more than 2 GB of real text that does not repeat, for `make bench` section h:
the source trees Debian ships as packages (the Linux kernel, GCC, OpenJDK's class library,
Rust's standard library, binutils), downloaded with `apt-get download` from Debian's
registry, one document per source file, every document distinct (whole files identical in
content are kept once), UTF-8 only, files over 2 MB left out (generated tables).

    python big_corpus.py WORK OUT.jsonl

Prints one JSON line: documents, bytes, and the packages with their versions. The packages
(about 310 MB of downloads) stay in WORK/debs for the next run.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

# The source trees, largest first; the versions are what the machine's apt sources have.
PACKAGES = ["linux-source-6.1", "gcc-12-source", "openjdk-17-source", "rust-src", "binutils-source"]
MAX_FILE = 2_000_000


def download(debs):
    os.makedirs(debs, exist_ok=True)
    have = {f.split("_")[0]: f for f in os.listdir(debs) if f.endswith(".deb")}
    for p in PACKAGES:
        if p not in have:
            subprocess.run(["apt-get", "download", p], cwd=debs, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return sorted((f for f in os.listdir(debs) if f.endswith(".deb")),
                  key=lambda f: PACKAGES.index(f.split("_")[0]) if f.split("_")[0] in PACKAGES else 99)


def members(deb):
    """(name, bytes) of every file of a package: inside its source tarballs and zips, or as
    they are."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], check=True, stdout=subprocess.PIPE).stdout
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as outer:
        for m in outer:
            if not m.isfile():
                continue
            name = m.name
            if name.endswith((".tar.xz", ".tar.gz", ".tar.bz2")):
                with tarfile.open(fileobj=outer.extractfile(m), mode="r|*") as inner:
                    for im in inner:
                        if im.isfile() and 0 < im.size <= MAX_FILE:
                            yield im.name, inner.extractfile(im).read()
            elif name.endswith("src.zip"):
                with zipfile.ZipFile(io.BytesIO(outer.extractfile(m).read())) as z:
                    for zi in z.infolist():
                        if not zi.is_dir() and 0 < zi.file_size <= MAX_FILE:
                            yield zi.filename, z.read(zi)
            elif 0 < m.size <= MAX_FILE:
                yield name, outer.extractfile(m).read()


def main():
    work, out = sys.argv[1], sys.argv[2]
    debs = download(os.path.join(work, "debs"))
    seen, docs, size = set(), 0, 0
    tmp = out + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        for deb in debs:
            for _, data in members(os.path.join(work, "debs", deb)):
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if "\x00" in text or not text.strip():
                    continue
                h = hashlib.sha1(data).digest()
                if h in seen:
                    continue
                seen.add(h)
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                docs += 1
                size += len(data)
    os.replace(tmp, out)
    print(json.dumps({"documents": docs, "bytes": size, "packages": [d[:-4] for d in debs]}))


if __name__ == "__main__":
    main()

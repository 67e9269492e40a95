"""configure stage: merge a base config and Kconfig fragments with kconfiglib.

The merge follows ``scripts/kconfig/merge_config.sh`` semantics: the base is
either ``allnoconfig`` (every symbol with a prompt set to n, except
``allnoconfig_y`` ones, as ``scripts/kconfig/conf.c`` ``conf_set_all_new_symbols``
does) or a defconfig from ``arch/$ARCH/configs/``; fragments are then loaded
on top, later fragments winning.  After the merge every requested symbol is
read back; a symbol that did not take its requested value is explained from
its ``depends on`` expression, its reverse dependencies (``select``) and its
choice, and the stage fails.

The written ``.config`` is byte-identical to what ``make olddefconfig`` gives
for the same input (tested in ``tests/test_kconfig.py``).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import kconfiglib

from . import kernel_tree
from .arch import arch_info, compiler_package
from .arch import known as known_arches
from .errors import KconfigError, ToolMissingError, UserError
from .files import decode_utf8, read_regular, sha256_file, write_json_atomic
from .git import Git
from .runner import Runner, require_tool
from .stage import Outcome, Stage, StageContext

_TRI = {0: "n", 1: "m", 2: "y"}
#: Largest config fragment read (bytes); a full defconfig is about 200 KiB.
MAX_FRAGMENT_BYTES = 4 << 20
_FRAG_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_FRAG_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set\s*$")
# Linux >= 5.13 marks MODULES with the bare attribute ``modules`` (commit
# "kconfig: change "modules" from sub-option to first-level attribute");
# kconfiglib 14.1.0 only knows the older ``option modules`` form.
_BARE_MODULES = re.compile(r"^(\s+)modules(\s*(?:#.*)?)$", re.MULTILINE)


class LinuxKconfig(kconfiglib.Kconfig):
    """kconfiglib's ``Kconfig`` that also parses Linux >= 5.13 trees.

    The only change: a bare ``modules`` attribute line in a ``Kconfig*`` file
    is read as ``option modules``, its pre-5.13 spelling, so line numbers and
    semantics are unchanged.  This is the single place that knows about it.
    """

    def _open(self, filename, mode):
        fh = super()._open(filename, mode)
        if mode != "r" or not os.path.basename(filename).startswith("Kconfig"):
            return fh
        with fh:
            text = fh.read()
        text = _BARE_MODULES.sub(r"\1option modules\2", text)
        return io.StringIO(text)


@dataclass(frozen=True)
class Request:
    """One symbol assignment from a fragment.

    Attributes:
        name: symbol name without ``CONFIG_``.
        value: requested value as written in .config (``y``/``m``/``n`` or a string/int/hex).
        file: the fragment it came from.
        line: 1-based line in ``file``.
    """

    name: str
    value: str
    file: str
    line: int


@dataclass
class KconfigResult:
    """What the configure stage did.

    Attributes:
        config: path of the written ``.config``.
        requested: every fragment request, in order (later wins).
        actual: final value of every requested symbol.
        changed: False when the existing ``.config`` already had this content.
        warnings: a symbol given different values (in one fragment or across
            fragments), worded as ``scripts/kconfig/merge_config.sh`` does.
    """

    config: Path
    requested: list[Request]
    actual: dict[str, str] = field(default_factory=dict)
    changed: bool = True
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "config": str(self.config),
            "symbols": [
                {"symbol": r.name, "requested": r.value, "actual": self.actual.get(r.name),
                 "source": f"{r.file}:{r.line}"}
                for r in _last_requests(self.requested).values()
            ],
        }


def kconfig_env(srctree: Path, arch: str, cross_compile: str) -> dict[str, str]:
    """Environment the top-level Makefile exports to Kconfig (Linux 6.1 ``Makefile``).

    Args:
        srctree: kernel source directory.
        arch: ``ARCH`` (e.g. ``arm``, ``arm64``).
        cross_compile: ``CROSS_COMPILE`` prefix (e.g. ``arm-linux-gnueabihf-``).

    Returns:
        Variables to put in ``os.environ`` while kconfiglib parses and evaluates.

    Raises:
        ToolMissingError: the cross compiler is not installed.
    """
    cc = f"{cross_compile}gcc"
    try:
        require_tool(cc)
    except ToolMissingError as e:
        raise ToolMissingError(cc, compiler_package(cross_compile),
                               f" (CROSS_COMPILE={cross_compile} for ARCH={arch})") from e
    version_text = Runner().first_line([cc, "--version"])
    srcarch = arch_info(arch).srcarch if arch in known_arches() else arch
    return {
        "srctree": str(srctree),
        "ARCH": arch,
        "SRCARCH": srcarch,
        "KERNELVERSION": kernel_version(srctree),
        "CC": cc,
        "LD": f"{cross_compile}ld",
        "NM": f"{cross_compile}nm",
        "OBJCOPY": f"{cross_compile}objcopy",
        "CC_VERSION_TEXT": version_text,
        "HOSTCC": "gcc",
        "HOSTCXX": "g++",
        "RUSTC": "rustc",
        "BINDGEN": "bindgen",
        "PAHOLE": "pahole",
        "CLANG_FLAGS": "",
        "USERCFLAGS": "",
        "USERLDFLAGS": "",
        "CROSS_COMPILE": cross_compile,
    }


def kernel_version(srctree: Path) -> str:
    """``VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION]`` (:func:`rprockit.kernel_tree.read_version`).

    Raises:
        KconfigError: the Makefile has no version lines (not a kernel tree).
    """
    try:
        return kernel_tree.read_version(srctree).full
    except kernel_tree.NotAKernelTreeError as e:
        raise KconfigError(f"{srctree}/Makefile has no VERSION line: is this a kernel "
                           f"tree? ({e.problem})") from e


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load(srctree: Path, arch: str, cross_compile: str) -> LinuxKconfig:
    """Parse the tree's Kconfig for ``arch``.

    Returns:
        A parsed kconfiglib tree (nothing loaded yet).

    Raises:
        ToolMissingError: the cross compiler is missing.
        KconfigError: the Kconfig files do not parse.
    """
    env = kconfig_env(Path(srctree), arch, cross_compile)
    with _environ(env), contextlib.chdir(srctree):
        try:
            kconf = LinuxKconfig("Kconfig", warn=False, suppress_traceback=False)
        except kconfiglib.KconfigError as e:
            raise KconfigError(f"cannot parse Kconfig in {srctree}: {e}") from e
    kconf._rprockit_env = env  # evaluated lazily; keep for later reads
    return kconf


def parse_fragment(path: Path) -> list[Request]:
    """Read ``CONFIG_X=v`` and ``# CONFIG_X is not set`` lines of a fragment.

    Raises:
        KconfigError: a line is neither an assignment, a comment nor blank.
    """
    out = []
    text = decode_utf8(read_regular(path, MAX_FRAGMENT_BYTES, "config fragment"), path,
                       "config fragment")
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if m := _FRAG_SET.match(line):
            out.append(Request(m.group(1), m.group(2).strip(), str(path), n))
        elif m := _FRAG_UNSET.match(line):
            out.append(Request(m.group(1), "n", str(path), n))
        elif line and not line.startswith("#"):
            raise KconfigError(
                f"{path}:{n}: cannot read '{raw}': a config fragment line is 'CONFIG_SYM=value' "
                "or '# CONFIG_SYM is not set'")
    return out


def redefinitions(reqs: list[Request]) -> list[str]:
    """A warning for every symbol whose value a later request changes.

    Worded as ``scripts/kconfig/merge_config.sh`` (Linux 6.1) words it:
    ``Value of CONFIG_X is redefined by fragment F: Previous value: ...
    New value: ...``; the later value wins, as there.
    """
    last: dict[str, Request] = {}
    out = []
    for r in reqs:
        prev = last.get(r.name)
        if prev is not None and prev.value != r.value:
            out.append(f"Value of CONFIG_{r.name} is redefined by fragment {r.file}:{r.line}: "
                       f"Previous value: {prev.value} ({prev.file}:{prev.line}) "
                       f"New value: {r.value}")
        last[r.name] = r
    return out


_HEX = re.compile(r"^(0[xX])?[0-9a-fA-F]+$")
_INT = re.compile(r"^-?[0-9]+$")


def _bad_value(sym: kconfiglib.Symbol, r: Request) -> str | None:
    """Why ``r.value`` can never be a value of ``sym`` (its type), or None.

    The rules are ``scripts/kconfig/symbol.c`` ``sym_string_valid`` (Linux 6.1).
    """
    v, t = r.value, sym.orig_type
    where = f"CONFIG_{sym.name}={v} ({r.file}:{r.line})"
    if t == kconfiglib.BOOL and v not in ("y", "n"):
        what = "m is impossible for a bool (it cannot be a module)" if v == "m" else \
            "a bool is y or n"
        return f"{where}: {sym.name} is a bool: {what}; write y or n"
    if t == kconfiglib.TRISTATE and v not in ("y", "m", "n"):
        return f"{where}: {sym.name} is a tristate: write y, m or n"
    if t == kconfiglib.HEX and not _HEX.match(v):
        return f"{where}: '{v}' is not a hex value; write 0x followed by hex digits"
    if t == kconfiglib.INT and not _INT.match(v):
        return f"{where}: '{v}' is not an integer; write decimal digits"
    return None


def _last_requests(reqs: list[Request]) -> dict[str, Request]:
    return {r.name: r for r in reqs}


def _sym_value(sym: kconfiglib.Symbol) -> str:
    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return _TRI[sym.tri_value]
    return sym.str_value


def _norm(sym: kconfiglib.Symbol, value: str) -> str:
    if sym.orig_type in (kconfiglib.STRING,) and value.startswith('"'):
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if sym.orig_type == kconfiglib.HEX:
        return value.lower()
    return value


def _operands(expr) -> list[kconfiglib.Symbol]:
    seen = []
    for item in kconfiglib.expr_items(expr):
        if isinstance(item, kconfiglib.Symbol) and not item.is_constant and item not in seen:
            seen.append(item)
    return seen


def _val(sym: kconfiglib.Symbol) -> str:
    return f"{sym.name} (={_sym_value(sym)})"


def _with_values(expr) -> str:
    """``expr_str`` with the current value after each symbol: ``A (=y) && B (=n)``."""
    text = kconfiglib.expr_str(expr)
    for o in sorted(_operands(expr), key=lambda s: -len(s.name)):
        text = re.sub(rf"\b{o.name}\b(?! \(=)", _val(o), text)
    return text


def _causes(sym: kconfiglib.Symbol) -> list[tuple[str, kconfiglib.Symbol]]:
    """What keeps ``sym`` at n, as ``(label, symbol)`` pairs.

    Unmet ``depends on`` operands come first (label ''); for a promptless
    symbol, the symbols that would ``select`` it (label 'selected by ') and
    the conditions of those selects (label ''), else its ``default`` conditions.
    """
    if kconfiglib.expr_value(sym.direct_dep) == 0:
        return [("", o) for o in _operands(sym.direct_dep) if o.tri_value == 0]
    if sym.visibility != 0:
        return []
    out = []
    for term in kconfiglib.split_expr(sym.rev_dep, kconfiglib.OR):
        # kconfiglib stores 'select S if C' in config X as (AND, X, C)
        if isinstance(term, tuple) and term[0] == kconfiglib.AND:
            selector, conds = term[1], _operands(term[2])
        else:
            selector, conds = term, []
        if isinstance(selector, kconfiglib.Symbol) and not selector.is_constant \
                and selector.tri_value == 0:
            out.append(("selected by ", selector))
        out += [("", o) for o in conds if o.tri_value == 0]
    if not out:
        out = [("default if ", o) for _, cond in sym.defaults for o in _operands(cond)
               if o.tri_value == 0]
    return out


def _chain(sym: kconfiglib.Symbol, max_depth: int = 8) -> str:
    """Shortest chain of causes from ``sym`` (=n) to a root cause.

    Edges go from a symbol to the operands that keep it n: unmet ``depends on``
    operands, or for a promptless symbol the symbols that would ``select`` it
    (or enable its ``default``).  A breadth-first search finds the nearest
    symbol with no such cause, usually one the user can set (e.g. ``MMU``).

    Returns:
        e.g. ``HAVE_ARM_SMCCC (=n) <- selected by CPU_V7 (=n) <- selected by
        ARCH_MULTI_V7 (=n) <- MMU (=n)``.
    """
    from collections import deque

    prev: dict = {sym: None}
    queue = deque([(sym, 0)])
    root = sym
    while queue:
        cur, depth = queue.popleft()
        causes = _causes(cur)
        if not causes:
            root = cur
            break
        if depth >= max_depth:
            continue
        for how, o in causes:
            if o not in prev:
                prev[o] = (cur, how)
                queue.append((o, depth + 1))
    path = []
    node = root
    while prev[node] is not None:
        parent, how = prev[node]
        path.append(f"{how}{_val(node)}")
        node = parent
    return " <- ".join([_val(sym), *reversed(path)])


def explain(sym: kconfiglib.Symbol) -> str:
    """One-line reason why ``sym`` has its current value.

    Returns:
        e.g. ``depends on ARCH_MXC (=n) && HAVE_ARM_SMCCC (=n); HAVE_ARM_SMCCC (=n) <-
        selected by CPU_V7 (=n) <- MMU (=n)``: the ``depends on`` expression with
        each operand's value, then for each operand that is n the chain of
        ``depends on``/``select``/``default`` operands that keeps it n.
    """
    bits = []
    if sym.direct_dep is not sym.kconfig.y:
        bits.append(f"depends on {_with_values(sym.direct_dep)}")
        for o in _operands(sym.direct_dep):
            if o.tri_value != 0:
                continue
            if _causes(o):
                bits.append(_chain(o))
            elif o.visibility == 0:
                bits.append(f"{_val(o)} has no prompt and nothing selects it")
            else:
                bits.append(f"{_val(o)} is not requested: add CONFIG_{o.name}=y to a fragment")
    if sym.visibility == 0 and not bits:
        bits.append(f"{sym.name} has no prompt"
                    + (f"; {_chain(sym)}" if _causes(sym) else
                       ", so only select or default can set it"))
    if sym.rev_dep is not sym.kconfig.n and sym.tri_value > 0:
        bits.append(f"selected by {_with_values(sym.rev_dep)}")
    if sym.choice is not None:
        sel = sym.choice.selection
        prompt = sym.choice.nodes[0].prompt
        bits.append(f"member of choice '{prompt[0] if prompt else sym.choice.name}' whose "
                    f"selection is {sel.name if sel else 'none'}")
    mods = sym.kconfig.syms.get("MODULES")
    if sym.orig_type == kconfiglib.TRISTATE and mods is not None and mods.tri_value == 0:
        bits.append("MODULES (=n), so m is not possible")
    return "; ".join(bits) if bits else "no dependency explains it (check the value's format)"


def _unknown(kconf: kconfiglib.Kconfig, reqs: list[Request]) -> list[str]:
    errs = []
    defined = {s.name for s in kconf.unique_defined_syms}
    for r in reqs:
        if r.name not in defined:
            close = difflib.get_close_matches(r.name, defined, n=3, cutoff=0.75)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            errs.append(f"{r.file}:{r.line}: unknown Kconfig symbol CONFIG_{r.name}: no Kconfig "
                        f"file of this tree defines it{hint} Remove it from the fragment or "
                        "apply the patch that adds it.")
    return errs


def is_config_file(base: str | Path) -> bool:
    """A base config that names a file (a path: it has a ``/``) rather than
    ``allnoconfig`` or a defconfig name."""
    return isinstance(base, Path) or "/" in base


def _load_base_file(kconf: LinuxKconfig, path: Path) -> None:
    """Load a board's config file (``.config``, ``config.gz``) as the base, as
    ``make olddefconfig`` does with a copied ``.config``: symbols this tree does not
    know are ignored, new ones take their defaults."""
    import tempfile

    from .running import read_config

    text = read_config(path)
    with tempfile.NamedTemporaryFile("w", suffix=".config", prefix="rprockit-base-") as fh:
        fh.write(text)
        fh.flush()
        kconf.load_config(fh.name)


def merge(kconf: LinuxKconfig, base: str, fragments: list[Path]) -> list[Request]:
    """Apply ``base`` then ``fragments`` to ``kconf`` (in memory).

    Args:
        kconf: from :func:`load`.
        base: ``allnoconfig``, a defconfig name in ``arch/$SRCARCH/configs/``, or the
            path of a board's config (``.config``, ``/proc/config.gz`` copied,
            ``/boot/config-<release>``; plain or gzip).
        fragments: config fragments, in order.

    Returns:
        Every request read from the fragments.

    Raises:
        KconfigError: unknown defconfig, unreadable fragment, or unknown symbols (all listed).
        ConfigSourceError: a base file that is not a kernel config.
        UnreadableFileError: a base file that cannot be read.
    """
    env = kconf._rprockit_env
    reqs: list[Request] = []
    for frag in fragments:
        reqs += parse_fragment(Path(frag))
    errs = _unknown(kconf, reqs)
    if errs:
        raise KconfigError("\n".join(errs))
    with _environ(env), contextlib.chdir(kconf.srctree or "."):
        if base == "allnoconfig":
            for sym in kconf.unique_defined_syms:
                sym.set_value(2 if sym.is_allnoconfig_y else 0)
        elif is_config_file(base):
            _load_base_file(kconf, Path(base))
        else:
            path = Path(kconf.srctree) / "arch" / env["SRCARCH"] / "configs" / base
            if not path.is_file():
                avail = sorted(p.name for p in path.parent.glob("*defconfig"))
                close = difflib.get_close_matches(base, avail, n=3)
                raise KconfigError(
                    f"defconfig '{base}' not found in {path.parent}"
                    + (f"; did you mean {', '.join(close)}?" if close else ""))
            kconf.load_config(str(path))
        for frag in fragments:
            kconf.load_config(str(Path(frag).resolve()), replace=False)
    return reqs


def check(kconf: LinuxKconfig, reqs: list[Request]) -> dict[str, str]:
    """Read back every requested symbol.

    Returns:
        ``{symbol: actual value}``.

    Raises:
        KconfigError: listing each symbol that did not take its value, with :func:`explain`.
    """
    actual, errs = {}, []
    bad = [m for r in _last_requests(reqs).values()
           if (m := _bad_value(kconf.syms[r.name], r)) is not None]
    if bad:
        raise KconfigError("Kconfig values that the symbols' types do not allow:\n  "
                           + "\n  ".join(bad))
    for name, r in _last_requests(reqs).items():
        sym = kconf.syms[name]
        got = _sym_value(sym)
        actual[name] = got
        want = _norm(sym, r.value)
        if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX) and want and got:
            try:
                ok = int(want, 0) == int(got, 0)
            except ValueError:
                ok = want == got
        else:
            ok = want == got
        if not ok:
            errs.append(f"{name}={r.value} requested ({r.file}:{r.line}), got {got or '(unset)'}: "
                        f"{explain(sym)}")
    if errs:
        raise KconfigError(
            "Kconfig symbols did not take their requested values:\n  " + "\n  ".join(errs)
            + "\nFix: also request the symbols they depend on, or drop the request.")
    return actual


def write(kconf: LinuxKconfig, out: Path) -> bool:
    """Write ``out`` atomically in the format of ``make olddefconfig``.

    Returns:
        True when the file content changed.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".rprockit-tmp")
    header = f"#\n# Automatically generated file; DO NOT EDIT.\n# {kconf.mainmenu_text}\n#\n"
    with _environ(kconf._rprockit_env):
        kconf.write_config(str(tmp), header=header, save_old=False)
    new = tmp.read_bytes()
    if out.is_file() and out.read_bytes() == new:
        tmp.unlink()
        return False
    os.replace(tmp, out)
    return True


def configure(srctree: Path, arch: str, cross_compile: str, base: str,
              fragments: list[Path], out_config: Path) -> KconfigResult:
    """Run the whole configure stage: parse, merge, check, write.

    Args:
        srctree: kernel source tree.
        arch: ``ARCH``.
        cross_compile: ``CROSS_COMPILE``.
        base: ``allnoconfig``, a defconfig name or a config file's path (:func:`merge`).
        fragments: config fragments in order.
        out_config: the ``.config`` to write (usually ``O=<dir>/.config``).

    Returns:
        The result; ``out_config`` is untouched when any check fails.

    Raises:
        KconfigError: unknown symbol, unknown defconfig or unmet request.
        ToolMissingError: no cross compiler.
    """
    kconf = load(srctree, arch, cross_compile)
    reqs = merge(kconf, base, fragments)
    actual = check(kconf, reqs)
    changed = write(kconf, out_config)
    return KconfigResult(Path(out_config), reqs, actual, changed, redefinitions(reqs))


# --------------------------------------------------------------------------- stage contract

def _config(ctx: StageContext) -> Path:
    return ctx.ws.out / ".config"


def stage_inputs(ctx: StageContext) -> tuple:
    """The tree as Kconfig sees it (:func:`kconfig_tree`), ARCH, CROSS_COMPILE, base
    config (and a base file's sha256), each fragment's sha256, compiler version.

    Raises:
        ToolMissingError: no cross compiler.
    """
    p = ctx.profile
    cc_text = kconfig_env(ctx.ws.src, p.arch, p.cross_compile)["CC_VERSION_TEXT"]
    base = base_config(ctx)
    return ("configure", kconfig_tree(ctx), p.arch, p.cross_compile, base,
            sha256_file(base) if is_config_file(base) else None,
            [(str(f), sha256_file(f)) for f in p.fragments], cc_text)


#: What Kconfig reads from the tree: every Kconfig file, the scripts its $(shell ...)
#: calls, the top Makefile (KERNELVERSION) and the defconfigs.
KCONFIG_INPUTS = (":(glob)**/Kconfig*", "scripts", "Makefile", ":(glob)arch/*/configs")


def kconfig_tree(ctx: StageContext) -> tuple[str, str]:
    """The tree as Kconfig sees it: the fetched baseline commit and the sha256 of what
    the applied patches change in :data:`KCONFIG_INPUTS`, so a patch to a driver's C
    file does not make the configure stage run again."""
    import hashlib

    from .patch.stage import baseline

    git = Git(ctx.ws.src, ctx.runner)
    try:
        base = baseline(ctx)
    except UserError:  # no fetch state (a tree given as it is): its HEAD
        return git.head(), ""
    diff = git("diff", base, "HEAD", "--", *KCONFIG_INPUTS).stdout
    return base, hashlib.sha256(diff.encode()).hexdigest()


def base_config(ctx: StageContext) -> str:
    """The base config of this run: ``--base-config`` (a file, or the target's config
    saved by :func:`rprockit.running.config_from_target`), else the profile's."""
    return str(ctx.base_config) if ctx.base_config else ctx.profile.config_base


def stage_outputs_ok(ctx: StageContext, state: dict) -> bool:
    """``O=/.config`` exists with the recorded sha256."""
    cfg = _config(ctx)
    return cfg.is_file() and sha256_file(cfg) == state.get("config_sha256")


def stage_run(ctx: StageContext) -> Outcome:
    """Merge base config and fragments, prove every request took, write ``O=/.config``.

    Writes ``reports/kconfig.json``.

    Raises:
        KconfigError: unknown symbol, unknown defconfig or unmet request.
    """
    p = ctx.profile
    cfg = _config(ctx)
    base = base_config(ctx)
    res = configure(ctx.ws.src, p.arch, p.cross_compile, base, list(p.fragments), cfg)
    for w in res.warnings:
        ctx.say(f"[configure] warning: {w}")
    sha = sha256_file(cfg)
    write_json_atomic(ctx.ws.base / "reports" / "kconfig.json", res.to_dict())
    what = f"base {base}; " if is_config_file(base) else ""
    return Outcome(f"{what}{len(res.actual)} requested symbols all set; .config {sha[:12]}",
                   state={"config_sha256": sha}, data={})


def _skipped(ctx: StageContext, state: dict) -> str:
    return f".config {state['config_sha256'][:12]} unchanged"


#: The configure stage.
STAGE = Stage("configure", inputs=stage_inputs, run=stage_run, outputs_ok=stage_outputs_ok,
              skipped_summary=_skipped)

"""Every limit, timeout and pytest setting of the grader, in one place.

:class:`Limits` is what a grading run may spend per notebook; its defaults are the
defaults of ``python -m grader`` / ``make grade`` and of ``pytest tests/grading``, and
:func:`add_limit_options` gives both the same command-line options.
"""
import argparse
import dataclasses

__all__ = ["Limits", "GB", "MB", "PYTEST_INI", "PYTEST_ARGS", "MIME",
           "INTERRUPT_GRACE", "STARTUP_TIMEOUT", "MAX_RESTARTS", "AUTODIFF_PACKAGES",
           "CPU_CORES", "CPU_SHARES", "NICE", "SOCKETS_SIZE",
           "add_limit_options", "limits_from", "format_bytes", "parse_bytes"]

MB = 1 << 20
GB = 1 << 30

#: seconds to wait for the kernel after an interrupt before killing it
INTERRUPT_GRACE = 5.0
#: seconds for a kernel to start and answer
STARTUP_TIMEOUT = 60.0
#: a notebook whose kernel dies or hangs this many times is given up
MAX_RESTARTS = 25
#: the mime type the kernel's bridge answers with
MIME = "application/x-minigrad-grader"

#: top-level modules that differentiate (automatically or symbolically): wherever they are
#: installed, a graded kernel sees the stand-in :mod:`grader.standin` in their place
AUTODIFF_PACKAGES = ("autograd", "jax", "jaxlib", "torch", "functorch", "tensorflow", "keras",
                     "tf_keras", "theano", "pytensor", "aesara", "tangent", "chainer", "mygrad",
                     "tinygrad", "micrograd", "sympy", "isympy", "casadi", "algopy",
                     "numdifftools", "autograd_gamma", "mxnet", "paddle", "oneflow", "flax",
                     "equinox", "diffrax", "optax", "haiku", "trax")
#: CPU cores one whole sandbox may use at once (a cgroup quota, where the grader has cgroups)
CPU_CORES = 1.0
#: the sandbox's CPU weight against the host's other work (cgroup v1 cpu.shares, default 1024;
#: cgroup v2 cpu.weight is this / 1024 * 100)
CPU_SHARES = 512
#: the nice value of every process of a sandbox (and of its autogroup)
NICE = 5
#: size of the kernel's socket folder (a tmpfs in the sandbox: sockets take no room)
SOCKETS_SIZE = 1 << 20

#: the pytest configuration of a grading run (the only one: no file of the repository is read)
PYTEST_INI = """\
[pytest]
addopts = -p no:cacheprovider
filterwarnings =
    ignore:Output seems independent of input:UserWarning
markers =
    exercise(id, points): the graded exercise a test belongs to and its points
"""
#: the arguments every grading run of pytest gets: only the grader's plugin, no conftest
PYTEST_ARGS = ["-q", "-p", "grader.plugin", "--noconftest", "-p", "no:cacheprovider"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one notebook's grading may spend. Times in seconds, sizes in bytes."""

    #: one notebook cell (when the notebook is run at the start)
    cell_timeout: float = 60.0
    #: one graded call or evaluation
    call_timeout: float = 20.0
    #: the whole grading of one notebook (its cells, every test, every restart)
    notebook_timeout: float = 900.0
    #: address space of each process of the kernel (RLIMIT_AS)
    memory: int = 4 * GB
    #: processes and threads of the kernel's user (RLIMIT_NPROC; enforced when grading as root)
    processes: int = 256
    #: largest file the kernel may write (RLIMIT_FSIZE), and size of its temp and home folders
    file_size: int = 256 * MB
    #: CPU seconds of each process of the kernel, over its whole life (RLIMIT_CPU)
    cpu_time: int = 600
    #: output (prints, displays, answers) one execution may send back
    output: int = 16 * MB

    @property
    def message_bytes(self):
        """Bytes one message from the kernel may hold, all its frames together (text may
        grow up to 6 times as JSON escapes)."""
        return 6 * self.output + MB

    @property
    def execution_bytes(self):
        """Bytes the grading process accepts from a kernel during one execution, on all its
        channels together: past this the kernel is cut off (output limit exceeded)."""
        return 8 * self.output + 16 * MB

    def as_args(self):
        """The command-line options that give these limits (see :func:`add_limit_options`)."""
        return ["--cell-timeout", str(self.cell_timeout), "--call-timeout", str(self.call_timeout),
                "--notebook-timeout", str(self.notebook_timeout),
                "--memory-limit", str(self.memory), "--process-limit", str(self.processes),
                "--file-size-limit", str(self.file_size), "--cpu-limit", str(self.cpu_time),
                "--output-limit", str(self.output)]


def format_bytes(n):
    """``4294967296`` -> ``"4 GB"``; ``16777216`` -> ``"16 MB"``."""
    for unit, size in (("GB", GB), ("MB", MB), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def parse_bytes(text):
    """``"4G"``, ``"4GB"``, ``"512M"``, ``"100k"`` or a number of bytes, as bytes."""
    s = str(text).strip().upper().replace(" ", "").removesuffix("B")
    scale = {"K": 1 << 10, "M": MB, "G": GB, "T": 1 << 40}.get(s[-1:], 1)
    number = s[:-1] if scale != 1 else s
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (write e.g. 4G, 512M or bytes)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive: {text!r}")
    return value


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return parse


#: option, Limits field, parser, help
_OPTIONS = [
    ("--cell-timeout", "cell_timeout", _positive(float), "seconds a notebook cell may run"),
    ("--call-timeout", "call_timeout", _positive(float), "seconds one graded call may run"),
    ("--notebook-timeout", "notebook_timeout", _positive(float),
     "seconds the whole grading of one notebook may take"),
    ("--memory-limit", "memory", parse_bytes, "address space of the kernel (e.g. 4G)"),
    ("--process-limit", "processes", _positive(int), "processes and threads of the kernel"),
    ("--file-size-limit", "file_size", parse_bytes,
     "largest file the kernel may write, and size of its temp and home folders"),
    ("--cpu-limit", "cpu_time", _positive(int), "CPU seconds of each kernel process"),
    ("--output-limit", "output", parse_bytes, "output one execution may send back"),
]


def add_limit_options(add):
    """Register the limit options with ``add`` (``parser.add_argument`` or pytest's
    ``group.addoption``); their defaults are :class:`Limits`' defaults."""
    defaults = Limits()
    for option, field, parse, text in _OPTIONS:
        default = getattr(defaults, field)
        shown = format_bytes(default) if parse is parse_bytes else f"{default:g}"
        metavar = "SIZE" if parse is parse_bytes else "SECONDS" if "time" in field else "N"
        add(option, type=parse, default=default, dest=field + "_limit", metavar=metavar,
            help=f"{text} (default {shown})")


def limits_from(get):
    """:class:`Limits` from the parsed options; ``get(dest)`` reads one."""
    return Limits(**{field: get(field + "_limit") for _, field, _, _ in _OPTIONS})

"""Build of the compiled kernel sum of the warp; everything else is in pyproject.toml.

The extension is optional: where it cannot be built, the same sums run in numpy
(`dcrmodel.warp.resample`), slower, with the same result bit for bit.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExtension(build_ext):
    """Compile without fused multiply-adds, so that the sums round as numpy's do."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            flags = ["/O2", "/fp:precise"]
        else:
            flags = ["-O2", "-ffp-contract=off"]
        for extension in self.extensions:
            extension.extra_compile_args = flags
        super().build_extensions()


setup(
    ext_modules=[
        Extension("dcrmodel.warp._kernelsum", ["src/dcrmodel/warp/_kernelsum.pyx"],
                  optional=True),
    ],
    cmdclass={"build_ext": BuildExtension},
)

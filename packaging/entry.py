"""Entry point of the frozen HemaLens build (PyInstaller runs this file as ``__main__``).

ONNX Runtime is imported before anything can load PySide6: on Windows, Qt ships an older MSVC
runtime, and when Qt's copy is loaded first ``onnxruntime_pybind11_state`` fails with a DLL
initialisation error. Importing it here, first, makes the order hold for every code path.
"""

import multiprocessing

import onnxruntime  # noqa: F401  (import order matters, see above)

from hemalens.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())

"""Pinned host and device buffers and a CUDA stream for the TensorRT runtime, without PyTorch.

pycuda is used where it is installed (it builds from source and needs nvcc); otherwise NVIDIA's
cuda-python (a wheel) does the same through the CUDA runtime API. Both expose one small interface:
`Buffer(nbytes)` with `.host` (a pinned uint8 numpy array) and `.device` (an integer device pointer),
and `Stream` with upload/download/synchronize.
"""

from __future__ import annotations

import ctypes

import numpy as np

from wildpose.errors import BackendUnavailableError


def _cuda_python():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python 12.6 and later
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            return None
    return cudart


def available() -> str | None:
    """"pycuda", "cuda-python", or None when neither can be imported."""
    try:
        import pycuda.driver  # noqa: F401

        return "pycuda"
    except ImportError:
        return "cuda-python" if _cuda_python() is not None else None


def open_api(prefer: str | None = None):
    """The buffer API to use: `PycudaApi` or `CudaPythonApi`; raises `BackendUnavailableError`."""
    which = prefer or available()
    if which == "pycuda":
        return PycudaApi()
    if which == "cuda-python":
        return CudaPythonApi()
    raise BackendUnavailableError("TensorRT buffers need pycuda or cuda-python; install one with "
                                  "`pip install cuda-python` (a wheel) or `pip install pycuda` (needs nvcc)")


class PycudaApi:
    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.autoinit  # noqa: F401 (creates and pushes a context on device 0)
        import pycuda.driver as cuda

        self._cuda = cuda

    def device_name(self) -> str:
        return self._cuda.Device(0).name()

    def buffer(self, nbytes: int):
        host = self._cuda.pagelocked_empty(nbytes, np.uint8)
        device = self._cuda.mem_alloc(nbytes)
        return _Buffer(host, int(device), keep=device, free=lambda: device.free())

    def stream(self):
        stream = self._cuda.Stream()
        cuda = self._cuda
        return _Stream(
            handle=stream.handle,
            upload=lambda buf, n: cuda.memcpy_htod_async(buf.device, buf.host[:n], stream),
            download=lambda buf, n: cuda.memcpy_dtoh_async(buf.host[:n], buf.device, stream),
            synchronize=stream.synchronize, close=lambda: None)


class CudaPythonApi:
    name = "cuda-python"

    def __init__(self) -> None:
        self._rt = _cuda_python()
        self._check(self._rt.cudaFree(0), "initialising CUDA")  # creates the primary context

    def _check(self, result, what: str):
        error, *values = result if isinstance(result, tuple) else (result,)
        if int(error) != 0:
            name = self._rt.cudaGetErrorName(error)[1]
            name = name.decode() if isinstance(name, bytes) else name
            raise BackendUnavailableError(f"CUDA failed while {what}: {name}")
        return values[0] if len(values) == 1 else values

    def device_name(self) -> str:
        name = self._check(self._rt.cudaGetDeviceProperties(0), "reading the GPU's properties").name
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00")

    def buffer(self, nbytes: int):
        host_ptr = self._check(self._rt.cudaMallocHost(nbytes), "allocating pinned host memory")
        device_ptr = self._check(self._rt.cudaMalloc(nbytes), "allocating device memory")
        host = np.ctypeslib.as_array(ctypes.cast(int(host_ptr), ctypes.POINTER(ctypes.c_uint8)), (nbytes,))

        def free() -> None:
            self._rt.cudaFreeHost(host_ptr)
            self._rt.cudaFree(device_ptr)

        return _Buffer(host, int(device_ptr), keep=None, free=free)

    def stream(self):
        rt = self._rt
        handle = self._check(rt.cudaStreamCreate(), "creating a stream")
        to_device = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        return _Stream(
            handle=int(handle),
            upload=lambda buf, n: self._check(
                rt.cudaMemcpyAsync(buf.device, buf.host.ctypes.data, n, to_device, handle), "uploading"),
            download=lambda buf, n: self._check(
                rt.cudaMemcpyAsync(buf.host.ctypes.data, buf.device, n, to_host, handle), "downloading"),
            synchronize=lambda: self._check(rt.cudaStreamSynchronize(handle), "synchronising a stream"),
            close=lambda: rt.cudaStreamDestroy(handle))


class _Buffer:
    """`host`: pinned uint8 numpy array; `device`: device pointer (int); same size in bytes."""

    def __init__(self, host: np.ndarray, device: int, keep, free) -> None:
        self.host, self.device, self._keep, self._free = host, device, keep, free

    @property
    def nbytes(self) -> int:
        return self.host.nbytes

    def view(self, dtype, shape) -> np.ndarray:
        """The first bytes of the host buffer as an array of `dtype` and `shape`."""
        count = int(np.prod(shape))
        return self.host[:count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)

    def free(self) -> None:
        if self._free is not None:
            self._free()
            self._free = None


class _Stream:
    def __init__(self, handle: int, upload, download, synchronize, close) -> None:
        self.handle = handle
        self.upload, self.download, self.synchronize, self.close = upload, download, synchronize, close

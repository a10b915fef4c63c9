# LibTorch: TorchScript modules run through torch::jit (docs/LIBTORCH.md). By default the system's
# LibTorch (Debian's libtorch-dev); DELTANN_LIBTORCH_DIR names the folder holding another one's
# TorchConfig.cmake, such as the one inside a PyPI `torch` wheel or a CUDA-enabled LibTorch.
option(DELTANN_WITH_LIBTORCH "Build the LibTorch (TorchScript) engine" ON)
set(DELTANN_LIBTORCH_DIR "" CACHE PATH
  "Folder holding TorchConfig.cmake of the LibTorch to build against (empty: the system's)")

# TorchConfig.cmake caches what it found (TORCH_LIBRARY, c10_LIBRARY, the Torch and Caffe2
# package folders). When DELTANN_LIBTORCH_DIR changes, forget them, or a reconfigure would
# silently keep linking the previous LibTorch.
function(_deltann_forget_libtorch)
  foreach(_var Torch_DIR Caffe2_DIR TORCH_LIBRARY c10_LIBRARY C10_CUDA_LIBRARY LIBNVTOOLSEXT
               CAFFE2_NVRTC_LIBRARY)
    unset(${_var} CACHE)
  endforeach()
endfunction()

if(DELTANN_WITH_LIBTORCH)
  if(DEFINED _DELTANN_LIBTORCH_DIR_USED AND
     NOT "${_DELTANN_LIBTORCH_DIR_USED}" STREQUAL "${DELTANN_LIBTORCH_DIR}")
    _deltann_forget_libtorch()
  endif()
  set(_DELTANN_LIBTORCH_DIR_USED "${DELTANN_LIBTORCH_DIR}" CACHE INTERNAL "")

  set(_torch_off "")
  set(_torch_config_dir "${DELTANN_LIBTORCH_DIR}")
  # Also accept what `torch.utils.cmake_prefix_path` prints (the folder above Torch/).
  if(_torch_config_dir AND EXISTS "${_torch_config_dir}/Torch/TorchConfig.cmake")
    set(_torch_config_dir "${_torch_config_dir}/Torch")
  endif()
  if(_torch_config_dir)
    if(NOT EXISTS "${_torch_config_dir}/TorchConfig.cmake")
      set(_torch_off "DELTANN_LIBTORCH_DIR=${DELTANN_LIBTORCH_DIR} has no TorchConfig.cmake (nor Torch/TorchConfig.cmake)")
    else()
      # Only that LibTorch: the system's must not be mixed in. TorchConfig.cmake looks for its
      # Caffe2 package and its libraries with PATHS, which CMake searches *after* the system
      # folders, so with Debian's libtorch-dev installed it would find Debian's Caffe2Config and
      # libc10.so. Pointing those cache entries at this LibTorch's own files first prevents that.
      get_filename_component(_torch_prefix "${_torch_config_dir}/../../.." ABSOLUTE)
      if(EXISTS "${_torch_prefix}/share/cmake/Caffe2/Caffe2Config.cmake")
        set(Caffe2_DIR "${_torch_prefix}/share/cmake/Caffe2" CACHE PATH "" FORCE)
      endif()
      # (cache variable:library) as TorchConfig.cmake names them.
      foreach(_entry "TORCH_LIBRARY:torch" "c10_LIBRARY:c10" "C10_CUDA_LIBRARY:c10_cuda")
        string(REPLACE ":" ";" _entry "${_entry}")
        list(GET _entry 0 _var)
        list(GET _entry 1 _lib)
        if(EXISTS "${_torch_prefix}/lib/lib${_lib}.so")
          set(${_var} "${_torch_prefix}/lib/lib${_lib}.so" CACHE FILEPATH "" FORCE)
        endif()
      endforeach()
      # A CUDA LibTorch's config compiles and runs a CUDA program to find the GPU's architecture
      # unless it is told one; that fails on a machine without a GPU (and with CMake 3.25, which
      # lacks nvcc's C++20 flags). The worker compiles no CUDA code, so any value will do.
      if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
        set(TORCH_CUDA_ARCH_LIST "8.0")
      endif()
      find_package(Torch CONFIG QUIET PATHS "${_torch_config_dir}" NO_DEFAULT_PATH)
    endif()
  else()
    find_package(Torch CONFIG QUIET)
  endif()
  if(NOT _torch_off AND NOT (Torch_FOUND AND TARGET torch))
    set(_torch_off "TorchConfig.cmake not found (install Debian's libtorch-dev, or set DELTANN_LIBTORCH_DIR)")
  endif()

  if(_torch_off)
    deltann_engine_off(libtorch "${_torch_off}")
  else()
    get_filename_component(_torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
    # A LibTorch inside a PyPI wheel finds its CUDA libraries in the nvidia-* wheels beside it
    # (site-packages/nvidia/*/lib) through its own $ORIGIN RPATH. The worker must link and load
    # those too, ahead of the system CUDA toolkit that TorchConfig also adds (another CUDA
    # version, whose libnccl or libcudart lacks symbols the wheel needs).
    file(GLOB _torch_nvidia_dirs LIST_DIRECTORIES true "${_torch_lib_dir}/../../nvidia/*/lib")
    # TORCH_LIBRARIES is the `torch` target plus c10 (and the CUDA libraries of a CUDA build); the
    # target brings the include folders (as system headers) and TorchConfig's
    # _GLIBCXX_USE_CXX11_ABI setting. An old-ABI LibTorch (=0) cannot link with deltann's
    # new-ABI core: docs/LIBTORCH.md. deltann_worker_process: the load tries the spec's input
    # shape in a child process of its own.
    deltann_add_engine(libtorch
      SOURCES src/backends/libtorch/libtorch_backend.cpp src/backends/libtorch/libtorch_output.cpp
      DEPS deltann_worker_process ${TORCH_LIBRARIES}
      RUNTIME_DIRS ${_torch_nvidia_dirs} "${_torch_lib_dir}"
      SUMMARY "LibTorch ${Torch_VERSION}, ${_torch_lib_dir}")
    # A CUDA-enabled LibTorch registers its CUDA support from libtorch_cuda.so's static
    # initialisers; the worker calls nothing in it directly, so keep it where the linker would
    # drop unreferenced libraries, or torch::cuda::is_available() would say false.
    target_link_options(deltann-worker-libtorch PRIVATE "LINKER:--no-as-needed")
    foreach(_dir IN LISTS _torch_nvidia_dirs)
      target_link_options(deltann-worker-libtorch PRIVATE "LINKER:-rpath-link,${_dir}")
    endforeach()
  endif()
else()
  deltann_engine_off(libtorch "DELTANN_WITH_LIBTORCH is OFF")
endif()

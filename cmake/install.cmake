# Installing deltann (docs/BUILD.md). `cmake --install <build> --prefix <prefix>` lays out
#
#   <prefix>/bin/deltann
#   <prefix>/lib/deltann/deltann-worker-<engine>   the engines built here, and libraries they bundle
#   <prefix>/lib/deltann/python/                   deltann_tools (build and conversion tools) and
#                                                  deltann_workers (the Python engines)
#   <prefix>/share/deltann/demo/                   the demo model, spec, labels and photos
#   <prefix>/share/doc/deltann/                    README.md and docs/
#
# Nothing in it names the source or build tree: deltann finds the rest from its own location
# (src/run/locate.cpp), so the prefix can be moved as a whole. The Python environments and the
# engine libraries that live in them (TVM, OpenVINO, a wheel's LibTorch) are dependencies found
# where the build found them, as in the build tree; ONNX Runtime's library is bundled.
#
# The build tree gets the same two things the binary looks for beside itself, as links into the
# source tree: python/ (the tools) and demo/ (DELTANN_DEFAULT_DEMO_DIR).
file(CREATE_LINK "${CMAKE_SOURCE_DIR}/python" "${CMAKE_BINARY_DIR}/python" SYMBOLIC)
file(CREATE_LINK "${DELTANN_DEFAULT_DEMO_DIR}" "${CMAKE_BINARY_DIR}/demo" SYMBOLIC)

install(DIRECTORY python/deltann_tools python/deltann_workers
  DESTINATION "${DELTANN_INSTALL_PKGLIBDIR}/python"
  PATTERN "__pycache__" EXCLUDE)
if(IS_DIRECTORY "${DELTANN_DEFAULT_DEMO_DIR}")
  # The trailing slash copies the folder's contents (the folder itself may be a link).
  install(DIRECTORY "${DELTANN_DEFAULT_DEMO_DIR}/" DESTINATION "${DELTANN_INSTALL_DATADIR}/demo")
else()
  message(STATUS "deltann: the install has no demo: ${DELTANN_DEFAULT_DEMO_DIR} does not exist "
                 "(scripts/setup makes it)")
endif()
file(GLOB _deltann_docs "${CMAKE_SOURCE_DIR}/docs/*.md")
install(FILES README.md ${_deltann_docs} DESTINATION "${DELTANN_INSTALL_DOCDIR}")

# `cpack -G DEB` in the build folder: a Debian package installing under /usr.
set(CPACK_PACKAGE_NAME deltann)
set(CPACK_PACKAGE_VENDOR deltann)
set(CPACK_PACKAGE_CONTACT "deltann maintainers <deltann@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Differential testing of image-recognition models across engines and settings")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)  # no debug information (which names the build folder) in the package
# The Debian 12 libraries of `deltann` itself and of the engines built from Debian packages
# alone (OpenCV DNN, reference, Arm NN, LibTorch bring their own: see Recommends). dpkg-shlibdeps
# is not used: it fails on the engines that load libraries from the project's Python environments
# (TVM, OpenVINO), which no package provides.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libopencv-core406, libopencv-imgproc406, libopencv-imgcodecs406, libsqlite3-0, libssl3, libtomlplusplus3, libwebp7, libonnx1, libprotobuf32, python3")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libopencv-dnn406, libtorch1.13, libarmnn22, libarmnntfliteparser22, libarmnn-cpuref-backend22")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
include(CPack)

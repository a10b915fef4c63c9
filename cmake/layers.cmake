# The layers of deltann, each a static library whose headers only the layers above it can see:
#
#   core <- data <- store <- run <- analysis <- report <- cli (the `deltann` executable)
#
# (data needs only core; store only core; run core, data and store; analysis core and store;
# report core, store and analysis.) Every public header lives in include/deltann/ and every
# internal one beside its sources in src/<layer>/, so no include folder by itself separates the
# layers. Instead each layer gets a folder of links in the build tree, layers/<layer>/, holding
# its own headers and those of the layers below it under the names the code includes them by
# ("deltann/store.h", "run/builder.h"); that folder is the layer's only include directory, handed
# on to the layers that link it. A lower layer that includes a higher layer's header therefore
# fails to compile. (The lower layers' headers are linked again in each folder because a header
# may include a sibling by its bare name, as run/builder.h does "worker_process.h", and the
# compiler looks for that beside the path it opened, which is the link.)

set(DELTANN_LAYER_DIR "${CMAKE_BINARY_DIR}/layers")

# _deltann_layer_link(LAYER HEADER): links HEADER (a path in the source tree) into LAYER's folder
# under the name the code includes it by, and records which layer owns it.
function(_deltann_layer_link layer header)
  cmake_parse_arguments(PARSE_ARGV 2 arg "BORROWED" "" "")
  file(RELATIVE_PATH rel "${CMAKE_SOURCE_DIR}" "${header}")
  if(rel MATCHES "^(include|src)/(.*)$")
    set(name "${CMAKE_MATCH_2}")
  else()
    message(FATAL_ERROR "deltann: ${rel} is neither under include/ nor src/, so no layer can own it")
  endif()
  if(NOT arg_BORROWED)
    get_property(owner GLOBAL PROPERTY "DELTANN_HEADER_OWNER_${rel}")
    if(owner AND NOT owner STREQUAL layer)
      message(FATAL_ERROR "deltann: ${rel} is claimed by the layers ${owner} and ${layer}")
    endif()
    set_property(GLOBAL PROPERTY "DELTANN_HEADER_OWNER_${rel}" "${layer}")
  endif()
  get_filename_component(dir "${DELTANN_LAYER_DIR}/${layer}/${name}" DIRECTORY)
  file(MAKE_DIRECTORY "${dir}")
  file(CREATE_LINK "${header}" "${DELTANN_LAYER_DIR}/${layer}/${name}" SYMBOLIC)
endfunction()

# deltann_add_layer(NAME SOURCES files... [HEADERS files...] [DEPS targets...])
# Builds the static library deltann_NAME from SOURCES and links the layers and libraries of DEPS
# (public: what a layer includes from below, its users include too). DEPS must be defined first.
# Its headers are those of
# HEADERS plus, for each source src/<dir>/<base>.cpp, include/deltann/<base>.h and
# src/<dir>/<base>.h where they exist. A source is compiled in its own folder, so within a layer
# every header stays visible.
function(deltann_add_layer name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;HEADERS;DEPS")
  set(target deltann_${name})
  add_library(${target} STATIC ${arg_SOURCES})
  file(REMOVE_RECURSE "${DELTANN_LAYER_DIR}/${name}")
  set(headers "")
  foreach(source IN LISTS arg_SOURCES)
    get_filename_component(source "${source}" ABSOLUTE)
    get_filename_component(dir "${source}" DIRECTORY)
    get_filename_component(base "${source}" NAME_WE)
    foreach(candidate "${CMAKE_SOURCE_DIR}/include/deltann/${base}.h" "${dir}/${base}.h")
      if(EXISTS "${candidate}")
        list(APPEND headers "${candidate}")
      endif()
    endforeach()
  endforeach()
  foreach(header IN LISTS arg_HEADERS)
    get_filename_component(header "${header}" ABSOLUTE)
    list(APPEND headers "${header}")
  endforeach()
  list(REMOVE_DUPLICATES headers)
  foreach(header IN LISTS headers)
    _deltann_layer_link(${name} "${header}")
  endforeach()
  # The headers of the layers below, linked too (see the top of this file).
  set(visible ${headers})
  foreach(dep IN LISTS arg_DEPS)
    get_property(below GLOBAL PROPERTY "DELTANN_LAYER_HEADERS_${dep}")
    foreach(header IN LISTS below)
      if(NOT header IN_LIST visible)
        _deltann_layer_link(${name} "${header}" BORROWED)
        list(APPEND visible "${header}")
      endif()
    endforeach()
  endforeach()
  set_property(GLOBAL PROPERTY "DELTANN_LAYER_HEADERS_${target}" ${visible})
  target_include_directories(${target} PUBLIC "${DELTANN_LAYER_DIR}/${name}")
  target_link_libraries(${target} PUBLIC ${arg_DEPS})
  set_property(GLOBAL APPEND PROPERTY DELTANN_LAYERS ${name})
endfunction()

# deltann_check_layer_headers(): every header of include/deltann/ and of the given src/ folders
# must belong to a layer, or it would compile in no layer at all; say which one lacks an owner.
function(deltann_check_layer_headers)
  set(globs "${CMAKE_SOURCE_DIR}/include/deltann/*.h")
  foreach(dir IN LISTS ARGN)
    list(APPEND globs "${CMAKE_SOURCE_DIR}/src/${dir}/*.h")
  endforeach()
  file(GLOB headers CONFIGURE_DEPENDS ${globs})
  set(orphans "")
  foreach(header IN LISTS headers)
    file(RELATIVE_PATH rel "${CMAKE_SOURCE_DIR}" "${header}")
    get_property(owner GLOBAL PROPERTY "DELTANN_HEADER_OWNER_${rel}")
    if(NOT owner)
      list(APPEND orphans "${rel}")
    endif()
  endforeach()
  if(orphans)
    list(JOIN orphans ", " orphans)
    message(FATAL_ERROR "deltann: no layer owns ${orphans}: give the header a source of the same "
                        "name in its layer, or list it in HEADERS of its deltann_add_layer() "
                        "call (CMakeLists.txt)")
  endif()
endfunction()

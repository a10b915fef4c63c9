# deltann_find_wheel(DIST SITE_VAR VERSION_VAR ERROR_VAR): where the project venv's Python
# (${DELTANN_PYTHON}) keeps its packages and which version of the wheel DIST is installed, asked
# without importing the package (that would load a whole runtime just to configure). On failure
# ERROR_VAR says why, in words for the "engine OFF" message; otherwise it is empty.
function(deltann_find_wheel dist site_var version_var error_var)
  set(${error_var} "" PARENT_SCOPE)
  if(NOT EXISTS "${DELTANN_PYTHON}")
    set(${error_var} "no Python at ${DELTANN_PYTHON} (run scripts/setup)" PARENT_SCOPE)
    return()
  endif()
  execute_process(
    COMMAND "${DELTANN_PYTHON}" -c
      "import sysconfig, importlib.metadata as m; print(sysconfig.get_paths()['purelib']); print(m.version('${dist}'))"
    OUTPUT_VARIABLE probe ERROR_VARIABLE probe_error RESULT_VARIABLE probe_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT probe_rc EQUAL 0)
    set(${error_var} "the ${dist} wheel is not installed in ${DELTANN_PYTHON}'s environment"
      PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "\n" ";" probe "${probe}")
  list(GET probe 0 site)
  list(GET probe 1 version)
  set(${site_var} "${site}" PARENT_SCOPE)
  set(${version_var} "${version}" PARENT_SCOPE)
endfunction()

# Injected with -DCMAKE_PROJECT_INCLUDE by axon_dagster.recorder.ros2_build: the ROS 2 wheels'
# exported *__rosidl_generator_py targets carry include directories of the machine the wheels
# were built on (/opt/python/cp311-cp311/...), which CMake refuses at generate time. Once the
# package's CMakeLists.txt has run (a deferred call), drop include directories that do not exist
# here from every imported target of the directory.
function(_axon_drop_missing_include_dirs)
  get_directory_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        message(STATUS "axon: dropping missing include directory ${_dir} of ${_target}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _axon_drop_missing_include_dirs)

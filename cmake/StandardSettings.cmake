# Shared compile settings, linked by every target (as ccache's StandardSettings).
option(ENABLE_ASAN "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(WARNINGS_AS_ERRORS "Treat warnings as errors" ON)

add_library(standard_settings INTERFACE)
target_compile_definitions(standard_settings INTERFACE _FILE_OFFSET_BITS=64
  AGENT_SECRETS_VERSION="${PROJECT_VERSION}")
# Drop DT_NEEDED entries nothing references: each one is mapped and relocated
# at every start, which short-lived CLI processes pay for.
target_link_options(standard_settings INTERFACE -Wl,--as-needed)
if(ENABLE_ASAN)
  target_compile_options(standard_settings INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(standard_settings INTERFACE -fsanitize=address,undefined)
endif()

add_library(standard_warnings INTERFACE)
target_compile_options(standard_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual
  -Wformat=2 -Wimplicit-fallthrough)
if(WARNINGS_AS_ERRORS)
  target_compile_options(standard_warnings INTERFACE -Werror)
endif()

# project_library(NAME SOURCES... ) : a static library for one folder.
# Its include directory is the whole source root, as headers are named
# "folder/file.hpp" from there: so any folder can include any other's headers,
# and a header-only edge would link fine. The layers are therefore checked on
# the #include lines against ARCHITECTURE.md's table (tests/layers, in
# make test), not by the compiler or the link order.
function(project_library name)
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE standard_warnings PUBLIC standard_settings)
  set_property(GLOBAL APPEND PROPERTY PROJECT_LIBRARIES ${name})
endfunction()

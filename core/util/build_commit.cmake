# build_commit.cmake - writes build_commit.h, the commit `pagoda --version`
# and pgd_version_string() name, on every build (CMakeLists.txt's target
# pagoda_build_commit) and once at configure time:
#   cmake -DSRC=<source dir> -DOUT=<header> [-DGIT=<git>] -P build_commit.cmake
# The commit is `git rev-parse --short=12 HEAD` of SRC, with "-dirty" when
# tracked files differ from it; "unknown" without git or when SRC is not the
# top of a checkout (a tarball, even one unpacked inside another checkout).
# OUT is rewritten only when its text changes, so a build whose commit did
# not change compiles and links nothing again.
if(NOT SRC OR NOT OUT)
  message(FATAL_ERROR "build_commit.cmake: needs -DSRC=<source dir> -DOUT=<header>")
endif()
set(commit "unknown")
if(GIT)
  execute_process(COMMAND ${GIT} rev-parse --show-toplevel WORKING_DIRECTORY ${SRC}
                  OUTPUT_VARIABLE top OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  file(REAL_PATH "${SRC}" src_real)
  if(rc EQUAL 0 AND NOT top STREQUAL "")
    file(REAL_PATH "${top}" top)
  endif()
  if(rc EQUAL 0 AND top STREQUAL src_real)
    execute_process(COMMAND ${GIT} rev-parse --short=12 HEAD WORKING_DIRECTORY ${SRC}
                    OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0 AND head MATCHES "^[0-9a-f]+$")
      set(commit ${head})
      execute_process(COMMAND ${GIT} status --porcelain --untracked-files=no WORKING_DIRECTORY ${SRC}
                      OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(NOT dirty STREQUAL "")
        string(APPEND commit "-dirty")
      endif()
    endif()
  endif()
endif()
set(text "/* build_commit.h - generated on every build by core/util/build_commit.cmake
 * (do not edit): the commit the sources were at when this build last ran. */
#ifndef PAGODA_BUILD_COMMIT_H
#define PAGODA_BUILD_COMMIT_H

#define PAGODA_BUILD_COMMIT \"${commit}\"

#endif
")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text) # whole or not at all: a new file renamed over the old
  file(WRITE ${OUT}.tmp "${text}")
  file(RENAME ${OUT}.tmp ${OUT})
endif()

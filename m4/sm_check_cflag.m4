# SPDX-License-Identifier: MIT
# SM_CHECK_CFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
# Checks that the C compiler accepts FLAG (compiling and linking), without
# leaving it in CFLAGS.
AC_DEFUN([SM_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([sm_var], [sm_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [sm_var], [
    sm_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS $1 -Werror"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([sm_var], [yes])], [AS_VAR_SET([sm_var], [no])])
    CFLAGS=$sm_save_CFLAGS])
  AS_VAR_IF([sm_var], [yes], [$2], [$3])
  AS_VAR_POPDEF([sm_var])
])

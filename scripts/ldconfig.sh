#!/bin/sh
# meson install's last step (meson.build): refresh the dynamic loader's cache, so that a
# program linked against the installed libcorrsde.so (cc ... $(pkg-config --libs corrsde))
# runs without LD_LIBRARY_PATH. Only as root (meson skips it for a staged DESTDIR
# install). It helps where the loader searches the libdir (/etc/ld.so.conf; Debian's
# /usr/local/lib/x86_64-linux-gnu is); elsewhere set LD_LIBRARY_PATH, or link with
# -Wl,-rpath,LIBDIR (README, "Install"). meson shows this script's output only if it fails.
[ "$(id -u)" = 0 ] || exit 0
exec ldconfig

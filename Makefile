# Build and install libws like a C library.
#
#     make                                   # cargo build --release
#     make install PREFIX=/usr/local         # (as root for /usr/local)
#     make install DESTDIR=/tmp/stage PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu
#     make uninstall PREFIX=/usr/local
#     make install TLS=0 PREFIX=/usr/local   # without TLS (no wss://): 1.32 MiB instead of 2.8
#
# Installs: $(LIBDIR)/libws.so.X.Y.Z (SONAME libws.so.X) with the symlinks
# libws.so.X and libws.so, $(LIBDIR)/libws.a, $(INCLUDEDIR)/ws.h and ws.hpp,
# $(LIBDIR)/pkgconfig/libws.pc and $(LIBDIR)/cmake/libws/ (find_package).
# The installed libraries come from the `dist` profile (Cargo.toml: fat
# LTO, one codegen unit, dependencies optimized for size) and carry no
# debug information (the release profile keeps some for profiling in
# target/). DESTDIR only stages: the files written name PREFIX/LIBDIR, not
# DESTDIR.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR   ?= $(LIBDIR)/cmake/libws
DESTDIR    ?=

CARGO      ?= cargo
STRIP      ?= strip
INSTALL    ?= install
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
BUILT      := $(TARGET_DIR)/release
COMMA      := ,

# TLS=0 builds and installs libws without TLS: cargo's `--no-default-features`
# (the default features are `tls` alone; a non-TLS default feature added
# later goes into `--features` here), no rustls and no ring. Same C ABI and
# headers; TLS calls return WS_ERR_UNSUPPORTED, ws_has_tls() is false
# (README "Size of the installed library"). It builds in its own target
# directory: cargo names libws's outputs without a hash, so the two builds
# in one directory would overwrite, and rebuild, each other.
TLS ?= 1
ifeq ($(TLS),0)
CARGO_FEATURES  := --no-default-features
DIST_TARGET_DIR := $(TARGET_DIR)/no-tls
else
CARGO_FEATURES  :=
DIST_TARGET_DIR := $(TARGET_DIR)
endif
DIST       := $(DIST_TARGET_DIR)/dist

# Relative relocations packed (DT_RELR, `-z pack-relative-relocs`): 5,000
# pointers in read-only-after-relocation data cost 24 bytes each as RELA
# entries and ~1 KiB in all as RELR (120 KiB less). The loader must know
# RELR: glibc 2.36 or later (the library then needs GLIBC_ABI_DT_RELR, so
# an older glibc refuses it by name). Off when this machine's glibc is
# older or unknown; RELR=no turns it off.
GLIBC_VERSION := $(shell getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')
RELR ?= $(if $(GLIBC_VERSION),$(shell printf '2.36\n%s\n' '$(GLIBC_VERSION)' | sort -V | head -n 1 | grep -qx 2.36 && echo yes),)
DIST_LINK_ARGS := $(if $(filter yes,$(RELR)),-C link-arg=-Wl$(COMMA)-z$(COMMA)pack-relative-relocs)

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(word 1,$(subst ., ,$(VERSION)))
MINOR   := $(word 2,$(subst ., ,$(VERSION)))
SONAME  := libws.so.$(MAJOR)
REALNAME := libws.so.$(VERSION)
BITS    := $(shell getconf LONG_BIT)

# What a static link needs besides libws.a: the output of
# `cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs`
# (tests/install.rs links a program statically with exactly these).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
STATIC_LIBS_CMAKE := $(subst $(eval) ,;,$(patsubst -l%,%,$(STATIC_LIBS)))

SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@MAJOR@|$(MAJOR)|g' -e 's|@MINOR@|$(MINOR)|g' \
	-e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' -e 's|@STATIC_LIBS_CMAKE@|$(STATIC_LIBS_CMAKE)|g' \
	-e 's|@SIZEOF_VOID_P@|$(shell expr $(BITS) / 8)|g' -e 's|@SIZEOF_VOID_P_BITS@|$(BITS)|g'

.PHONY: all build dist install uninstall

all: build

build:
	$(CARGO) build --release --lib
	ln -sf libws.so $(BUILT)/$(SONAME)  # what programs linked in the build tree load

# The libraries `install` copies. `cargo rustc` so the link arguments reach
# the shared library's link only (and only this profile's build).
dist:
	$(CARGO) rustc --profile dist --lib $(CARGO_FEATURES) --target-dir $(DIST_TARGET_DIR) -- $(DIST_LINK_ARGS)

install: dist
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR)
	$(INSTALL) -m 755 $(DIST)/libws.so $(DESTDIR)$(LIBDIR)/$(REALNAME)
	$(STRIP) --strip-unneeded $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libws.so
	$(INSTALL) -m 644 $(DIST)/libws.a $(DESTDIR)$(LIBDIR)/libws.a
	$(STRIP) --strip-debug $(DESTDIR)$(LIBDIR)/libws.a
	$(INSTALL) -m 644 include/ws.h include/ws.hpp $(DESTDIR)$(INCLUDEDIR)/
	$(SUBST) packaging/libws.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libws.pc
	$(SUBST) packaging/libwsConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/libwsConfig.cmake
	$(SUBST) packaging/libwsConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/libwsConfigVersion.cmake

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libws.so \
	      $(DESTDIR)$(LIBDIR)/libws.a $(DESTDIR)$(INCLUDEDIR)/ws.h $(DESTDIR)$(INCLUDEDIR)/ws.hpp \
	      $(DESTDIR)$(PKGCONFIGDIR)/libws.pc $(DESTDIR)$(CMAKEDIR)/libwsConfig.cmake \
	      $(DESTDIR)$(CMAKEDIR)/libwsConfigVersion.cmake
	-rmdir $(DESTDIR)$(CMAKEDIR)

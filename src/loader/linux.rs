// Linux bzImage / ELF vmlinux + initrd + cmdline loading (VMM foundation issue).

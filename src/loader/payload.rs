// Bare payload ELF loading (VMM foundation issue).

/* Test payload for the integration tests: behaviour picked by arg0 (RDX).
 * Entry: RDI = vCPU index, RSI = vCPU count, RDX = arg0, RCX = arg1. */
.globl _start
.text
_start:
    mov %rdi, %r12
    mov %rsi, %r13
    mov %rcx, %r14
    cmp $1, %rdx ; je debug_exit
    cmp $2, %rdx ; je triple_fault
    cmp $3, %rdx ; je bad_out
    cmp $4, %rdx ; je do_assert
    cmp $5, %rdx ; je spin
    cmp $6, %rdx ; je reset
    cmp $7, %rdx ; je pattern
    cmp $8, %rdx ; je bad_in
    cmp $9, %rdx ; je echo_in
    cmp $10, %rdx ; je halt
hello:
    lea msg(%rip), %rsi
    call puts
    mov $1, %eax
    mov $7, %rdi
    mov %r12, %rsi
    out %eax, $0xe0         /* SYNC(7, vcpu) */
    mov %rax, %rdi
    mov $3, %eax
    out %eax, $0xe0         /* DONE(reply) */
    hlt
debug_exit:
    mov %r14, %rax
    out %al, $0xf4
    hlt
triple_fault:
    ud2
bad_out:
    mov $0x1234, %rax
    out %ax, $0x80
    hlt
bad_in:
    in $0x81, %al
    hlt
do_assert:
    mov $2, %eax
    lea amsg(%rip), %rdi
    mov $(amsg_end - amsg), %rsi
    mov $42, %rdx
    out %eax, $0xe0
    hlt
echo_in:
    /* wait for a byte from COM1 (LSR bit 0), exit with it */
    mov $0x3fd, %dx
1:  in %dx, %al
    test $1, %al
    jz 1b
    mov $0x3f8, %dx
    in %dx, %al
    out %al, $0xf4
    hlt
halt:
    hlt
    jmp halt
spin:
    jmp spin
reset:
    mov $0xfe, %al
    out %al, $0x64
    hlt
pattern:
    /* page = 0x200000 + vcpu * 4096; write vcpu index + 0x1000 to its counter */
    mov %r12, %rbx
    shl $12, %rbx
    add $0x200000, %rbx
    lea 0x1000(%r12), %rax
    mov %rax, (%rbx)
    mov $1, %eax
    mov $1, %rdi
    mov %rbx, %rsi
    mov (%rbx), %rdx
    out %eax, $0xe0         /* SYNC(1, page gpa, value) */
    mov (%rbx), %rdi
    mov $3, %eax
    out %eax, $0xe0         /* DONE(value read back) */
    hlt
puts:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret
msg: .asciz "hello from payload\n"
amsg: .ascii "counter mismatch"
amsg_end:

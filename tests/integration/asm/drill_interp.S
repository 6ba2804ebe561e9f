/* Reference interp payload (docs/design.md, "The interp payload") for the
 * drill integration tests when the build has no built-in interp payload.
 * Registers: r12 stage, r13 result, r14 last command; no RAM bound check. */
.globl _start
.text
_start:
    xor %r12, %r12
    xor %r13, %r13
    xor %r14, %r14
top:
    mov $1, %eax
    mov %r12, %rdi
    mov %r13, %rsi
    mov %r14, %rdx
    out %eax, $0xe0
    mov $1, %r12
    mov %rax, %r14
    mov %rax, %rbx
    shr $56, %rbx
    mov %rax, %rcx
    shr $32, %rcx
    and $0xffffff, %rcx
    mov %eax, %r8d
    mov %rcx, %r9
    shl $12, %r9
    add $0x200000, %r9
    cmp $0, %rbx ; je op_exit
    cmp $1, %rbx ; je op_read
    cmp $2, %rbx ; je op_write
    cmp $3, %rbx ; je op_add
    cmp $4, %rbx ; je op_incloop
    cmp $5, %rbx ; je op_aincloop
    cmp $6, %rbx ; je op_fill
    cmp $7, %rbx ; je op_check
    cmp $8, %rbx ; je op_fillrange
    cmp $9, %rbx ; je op_checkrange
    hlt
op_exit:
    mov $3, %eax
    xor %rdi, %rdi
    out %eax, $0xe0
    hlt
op_read:
    mov (%r9), %r13
    jmp top
op_write:
    mov (%r9), %r13
    mov %r8, (%r9)
    jmp top
op_add:
    mov %r8, %r13
    lock xadd %r13, (%r9)
    jmp top
op_incloop:
    test %r8, %r8
    jz 2f
1:  mov (%r9), %rax
    inc %rax
    mov %rax, (%r9)
    mov %rax, %r13
    dec %r8
    jnz 1b
2:  jmp top
op_aincloop:
    test %r8, %r8
    jz 2f
1:  lock incq (%r9)
    dec %r8
    jnz 1b
2:  mov (%r9), %r13
    jmp top
/* fill page at r9 with seed r10 */
fillpage:
    xor %rax, %rax
    mov %r10, %r11
    shl $32, %r11
1:  mov %r11, %rdx
    xor %rax, %rdx
    mov %rdx, (%r9,%rax,8)
    inc %rax
    cmp $512, %rax
    jne 1b
    ret
/* count mismatches of page r9 vs seed r10 into r13 */
checkpage:
    xor %rax, %rax
    mov %r10, %r11
    shl $32, %r11
1:  mov %r11, %rdx
    xor %rax, %rdx
    cmp %rdx, (%r9,%rax,8)
    je 2f
    inc %r13
2:  inc %rax
    cmp $512, %rax
    jne 1b
    ret
op_fill:
    mov %r8, %r10
    call fillpage
    xor %r13, %r13
    jmp top
op_check:
    mov %r8, %r10
    xor %r13, %r13
    call checkpage
    jmp top
op_fillrange:
    mov %rcx, %r10
    test %r8, %r8
    jz 2f
1:  call fillpage
    add $4096, %r9
    inc %r10
    dec %r8
    jnz 1b
2:  xor %r13, %r13
    jmp top
op_checkrange:
    mov %rcx, %r10
    xor %r13, %r13
    test %r8, %r8
    jz 2f
1:  call checkpage
    add $4096, %r9
    inc %r10
    dec %r8
    jnz 1b
2:  jmp top

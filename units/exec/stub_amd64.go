package exec

import "debug/elf"

// stubMachine is the ELF machine of stubCode.
const stubMachine = elf.EM_X86_64

// stubCode is the exec stub's machine code (x86-64, Linux system calls, no
// libc). Its argv is [StubArg0, STATUS_FD, PATH, ARGV...]; it runs
//
//	if argc < 4 or STATUS_FD is not a decimal number in 3..999999: exit(203)
//	fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC)
//	fcntl(STATUS_FD+1, F_SETFD, FD_CLOEXEC)  // its own memfd
//	execve(PATH, &argv[3], envp)
//	write(STATUS_FD, &errno, 4)              // little-endian int32
//	exit(203)
//
// The bytes are the output of GNU as for the source beside each line (AT&T
// operands would read the other way round: this is Intel syntax). syscall
// clobbers rcx and r11, so argc lives in r13 and the fd in r12.
var stubCode = []byte{
	0x4c, 0x8b, 0x2c, 0x24, //                         0x00 mov r13, [rsp]           ; argc
	0x49, 0x83, 0xfd, 0x04, //                         0x04 cmp r13, 4
	0x0f, 0x82, 0x84, 0x00, 0x00, 0x00, //             0x08 jb fail
	0x48, 0x8b, 0x74, 0x24, 0x10, //                   0x0e mov rsi, [rsp+16]        ; argv[1]
	0x31, 0xff, //                                     0x13 xor edi, edi
	0x0f, 0xb6, 0x06, //                         parse 0x15 movzx eax, byte [rsi]
	0x85, 0xc0, //                                     0x18 test eax, eax
	0x74, 0x1a, //                                     0x1a jz parsed
	0x83, 0xe8, 0x30, //                               0x1c sub eax, '0'
	0x83, 0xf8, 0x09, //                               0x1f cmp eax, 9
	0x77, 0x6e, //                                     0x22 ja fail
	0x81, 0xff, 0xa0, 0x86, 0x01, 0x00, //             0x24 cmp edi, 100000
	0x73, 0x66, //                                     0x2a jae fail
	0x6b, 0xff, 0x0a, //                               0x2c imul edi, edi, 10
	0x01, 0xc7, //                                     0x2f add edi, eax
	0x48, 0xff, 0xc6, //                               0x31 inc rsi
	0xeb, 0xdf, //                                     0x34 jmp parse
	0x83, 0xff, 0x03, //                        parsed 0x36 cmp edi, 3
	0x72, 0x57, //                                     0x39 jb fail
	0x41, 0x89, 0xfc, //                               0x3b mov r12d, edi
	0xb8, 0x48, 0x00, 0x00, 0x00, //                   0x3e mov eax, 72              ; fcntl
	0xbe, 0x02, 0x00, 0x00, 0x00, //                   0x43 mov esi, 2               ; F_SETFD
	0xba, 0x01, 0x00, 0x00, 0x00, //                   0x48 mov edx, 1               ; FD_CLOEXEC
	0x0f, 0x05, //                                     0x4d syscall
	0xb8, 0x48, 0x00, 0x00, 0x00, //                   0x4f mov eax, 72              ; fcntl
	0x41, 0x8d, 0x7c, 0x24, 0x01, //                   0x54 lea edi, [r12+1]
	0xbe, 0x02, 0x00, 0x00, 0x00, //                   0x59 mov esi, 2
	0xba, 0x01, 0x00, 0x00, 0x00, //                   0x5e mov edx, 1
	0x0f, 0x05, //                                     0x63 syscall
	0x48, 0x8b, 0x7c, 0x24, 0x18, //                   0x65 mov rdi, [rsp+24]        ; argv[2]
	0x48, 0x8d, 0x74, 0x24, 0x20, //                   0x6a lea rsi, [rsp+32]        ; &argv[3]
	0x4a, 0x8d, 0x54, 0xec, 0x10, //                   0x6f lea rdx, [rsp+r13*8+16]  ; envp
	0xb8, 0x3b, 0x00, 0x00, 0x00, //                   0x74 mov eax, 59              ; execve
	0x0f, 0x05, //                                     0x79 syscall
	0xf7, 0xd8, //                                     0x7b neg eax                  ; errno
	0x89, 0x04, 0x24, //                               0x7d mov [rsp], eax           ; over argc
	0xb8, 0x01, 0x00, 0x00, 0x00, //                   0x80 mov eax, 1               ; write
	0x44, 0x89, 0xe7, //                               0x85 mov edi, r12d
	0x48, 0x89, 0xe6, //                               0x88 mov rsi, rsp
	0xba, 0x04, 0x00, 0x00, 0x00, //                   0x8b mov edx, 4
	0x0f, 0x05, //                                     0x90 syscall
	0xb8, 0xe7, 0x00, 0x00, 0x00, //             fail  0x92 mov eax, 231             ; exit_group
	0xbf, 0xcb, 0x00, 0x00, 0x00, //                   0x97 mov edi, 203             ; 203/EXEC
	0x0f, 0x05, //                                     0x9c syscall
}

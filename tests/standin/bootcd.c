/*
 * A stand-in for the boot program of a Windows install ISO (efisys.bin's \EFI\BOOT\BOOT{X64,AA64}.EFI),
 * for limapy's tests: it behaves as that program does where limapy meets it, and nothing more.
 *
 *   - It prints "Press any key to boot from CD or DVD" and a dot a second for about 5 seconds
 *     through the firmware's console (ConOut, which OVMF/AAVMF mirror to the serial port), polling
 *     the console input (ConIn: PS/2 or USB keyboard) for a key. Built with -DPROMPT_ON_SCREEN_ONLY
 *     it prints the prompt and its dots on the graphics console only (the text output the firmware's
 *     GraphicsConsole driver puts on the GOP device), so nothing of it reaches the serial port: a
 *     firmware that does not echo the prompt there (issue 23).
 *   - No key: it returns an error, so the firmware moves on to its next boot option, as the real
 *     one does (and a missed prompt ends in PXE or the UEFI shell).
 *   - A key: it plays Windows Setup's first steps: it writes a protective MBR, a GPT header and
 *     2 MiB of data to the first fixed, writable disk (the instance disk), then restarts the machine,
 *     as Setup does after its first phase.
 *
 * Built freestanding with clang + lld for x86_64 and aarch64 UEFI (tests/standin_efi.py).
 */
typedef unsigned long long UINT64;
typedef unsigned int UINT32;
typedef unsigned short UINT16;
typedef unsigned char UINT8;
typedef UINT64 UINTN;
typedef UINTN EFI_STATUS;
typedef void *EFI_HANDLE;
typedef unsigned char BOOLEAN;
typedef UINT16 CHAR16;

typedef struct { UINT32 a; UINT16 b, c; UINT8 d[8]; } EFI_GUID;
typedef struct { UINT64 Signature; UINT32 Revision, HeaderSize, CRC32, Reserved; } EFI_TABLE_HEADER;
typedef struct { UINT16 ScanCode; CHAR16 UnicodeChar; } EFI_INPUT_KEY;

typedef struct IN {
    void *Reset;
    EFI_STATUS (*ReadKeyStroke)(struct IN *, EFI_INPUT_KEY *);
    void *WaitForKey;
} IN;
typedef struct OUT {
    void *Reset;
    EFI_STATUS (*OutputString)(struct OUT *, CHAR16 *);
} OUT;

typedef struct {
    UINT32 MediaId;
    BOOLEAN RemovableMedia, MediaPresent, LogicalPartition, ReadOnly, WriteCaching;
    UINT32 BlockSize;
    UINT32 IoAlign;
    UINT64 LastBlock;
} BLOCK_MEDIA;
typedef struct BLOCK_IO {
    UINT64 Revision;
    BLOCK_MEDIA *Media;
    void *Reset;
    void *ReadBlocks;
    EFI_STATUS (*WriteBlocks)(struct BLOCK_IO *, UINT32, UINT64, UINTN, void *);
    EFI_STATUS (*FlushBlocks)(struct BLOCK_IO *);
} BLOCK_IO;

typedef struct {
    EFI_TABLE_HEADER Hdr;
    void *before_pages[2];                                             /* RaiseTPL, RestoreTPL */
    EFI_STATUS (*AllocatePages)(UINTN, UINTN, UINTN, UINT64 *);        /* 2 */
    void *before_handle_protocol[13];                                  /* 3..15 */
    EFI_STATUS (*HandleProtocol)(EFI_HANDLE, EFI_GUID *, void **);     /* 16 */
    void *before_stall[11];                                            /* 17..27 */
    EFI_STATUS (*Stall)(UINTN);                                        /* 28 */
    void *before_locate[7];                                            /* 29..35 */
    EFI_STATUS (*LocateHandleBuffer)(UINTN, EFI_GUID *, void *, UINTN *, EFI_HANDLE **); /* 36 */
} BOOT_SERVICES;
typedef struct {
    EFI_TABLE_HEADER Hdr;
    void *before_reset[10];                                            /* GetTime .. GetNextHighMonotonicCount */
    void (*ResetSystem)(UINTN, EFI_STATUS, UINTN, void *);             /* 10 */
} RUNTIME_SERVICES;
typedef struct {
    EFI_TABLE_HEADER Hdr;
    CHAR16 *FirmwareVendor;
    UINT32 FirmwareRevision;
    EFI_HANDLE ConsoleInHandle;
    IN *ConIn;
    EFI_HANDLE ConsoleOutHandle;
    OUT *ConOut;
    EFI_HANDLE StandardErrorHandle;
    OUT *StdErr;
    RUNTIME_SERVICES *RuntimeServices;
    BOOT_SERVICES *BootServices;
} SYSTEM_TABLE;

#define EFI_NOT_FOUND (0x8000000000000000ULL | 14)
#define BY_PROTOCOL 2
#define ALLOCATE_ANY_PAGES 0
#define LOADER_DATA 2
#define RESET_COLD 0

static EFI_GUID block_io_guid = {0x964e5b21, 0x6459, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
static OUT *out;
static OUT *prompt_out; /* where the prompt goes: ConOut, or the graphics console only (or nowhere) */

static void say(CHAR16 *s) { out->OutputString(out, s); }
static void prompt(CHAR16 *s) {
    if (prompt_out)
        prompt_out->OutputString(prompt_out, s);
}

#ifdef PROMPT_ON_SCREEN_ONLY
static EFI_GUID gop_guid = {0x9042a9de, 0x23dc, 0x4a38, {0x96, 0xfb, 0x7a, 0xde, 0xd0, 0x80, 0x51, 0x6a}};
static EFI_GUID text_out_guid = {0x387477c2, 0x69c7, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};

/* The text output edk2's GraphicsConsole installs on the handle of the graphics device it drives. */
static OUT *screen_only(BOOT_SERVICES *bs) {
    UINTN count = 0;
    EFI_HANDLE *handles = 0;
    if (bs->LocateHandleBuffer(BY_PROTOCOL, &gop_guid, 0, &count, &handles) != 0)
        return 0;
    for (UINTN i = 0; i < count; i++) {
        OUT *text = 0;
        if (bs->HandleProtocol(handles[i], &text_out_guid, (void **)&text) == 0 && text)
            return text;
    }
    return 0;
}
#endif

/* Setup's first steps, as far as the host can see them: partitions on disk 0, and data. */
static int write_disk(BOOT_SERVICES *bs) {
    UINTN count = 0;
    EFI_HANDLE *handles = 0;
    if (bs->LocateHandleBuffer(BY_PROTOCOL, &block_io_guid, 0, &count, &handles) != 0)
        return 0;
    for (UINTN i = 0; i < count; i++) {
        BLOCK_IO *io = 0;
        if (bs->HandleProtocol(handles[i], &block_io_guid, (void **)&io) != 0 || !io)
            continue;
        BLOCK_MEDIA *m = io->Media;
        if (m->RemovableMedia || m->LogicalPartition || m->ReadOnly || !m->MediaPresent || m->BlockSize != 512)
            continue;
        UINT64 buf = 0;
        UINTN size = 2u << 20;
        if (bs->AllocatePages(ALLOCATE_ANY_PAGES, LOADER_DATA, size / 4096, &buf) != 0)
            return 0;
        UINT8 *p = (UINT8 *)buf;
        for (UINTN j = 0; j < size; j++)
            p[j] = (UINT8)(0xa5 ^ (j >> 9));
        for (UINTN j = 0; j < 512; j++)
            p[j] = 0;
        p[446 + 4] = 0xee; /* protective MBR: one partition of type EE */
        p[446 + 8] = 1;
        p[510] = 0x55;
        p[511] = 0xaa;
        const char *sig = "EFI PART";
        for (UINTN j = 0; j < 8; j++)
            p[512 + j] = (UINT8)sig[j];
        if (io->WriteBlocks(io, m->MediaId, 0, size, p) != 0)
            return 0;
        io->FlushBlocks(io);
        return 1;
    }
    return 0;
}

EFI_STATUS efi_main(EFI_HANDLE image, SYSTEM_TABLE *st) {
    (void)image;
    out = st->ConOut;
    BOOT_SERVICES *bs = st->BootServices;
#ifdef PROMPT_ON_SCREEN_ONLY
    prompt_out = screen_only(bs);
    say(prompt_out ? u"limapy-standin: the prompt shows on the screen only\r\n"
                   : u"limapy-standin: no graphics console; the prompt shows nowhere\r\n");
#else
    prompt_out = out;
#endif
    EFI_INPUT_KEY key;
    while (st->ConIn->ReadKeyStroke(st->ConIn, &key) == 0) {
        /* drop keys typed before the prompt, as the real boot program does */
    }
    prompt(u"\r\nPress any key to boot from CD or DVD");
    for (int tick = 0; tick < 50; tick++) {
        if (st->ConIn->ReadKeyStroke(st->ConIn, &key) == 0) {
            say(u"\r\nlimapy-standin: key pressed, starting Setup\r\n");
            if (write_disk(bs)) {
                say(u"limapy-standin: Setup wrote the disk; restarting\r\n");
                bs->Stall(500000);
                st->RuntimeServices->ResetSystem(RESET_COLD, 0, 0, 0);
            }
            say(u"limapy-standin: no disk to write\r\n");
            return EFI_NOT_FOUND;
        }
        if (tick % 10 == 0)
            prompt(u".");
        bs->Stall(100000);
    }
    say(u"\r\nlimapy-standin: no key pressed\r\n");
    return EFI_NOT_FOUND;
}

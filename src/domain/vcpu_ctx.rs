//! The context a vCPU runs with ([`Vcpu`]): registers, virtual IDT, callbacks, segment state,
//! x87/SSE state and its console line buffer. Only the context's owner touches it; who owns it
//! is the slot's state word (`vcpu`).

use abi::TrapInfo;

use crate::pv::regs::GuestRegs;

/// Bytes of console output held until a newline.
const CONSOLE_LINE: usize = 256;

/// What the last hypercall asked the scheduler to do once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Request {
    #[default]
    None = 0,
    /// `SCHEDOP_yield`.
    Yield = 1,
    /// `SCHEDOP_block`.
    Block = 2,
}

/// One virtual CPU's context: only its owner (see the module head) touches it.
#[repr(C)]
pub struct Vcpu {
    /// Saved registers while not running.
    pub regs: GuestRegs,
    /// The virtual IDT (`set_trap_table`); address 0 = no handler.
    pub trap_table: [TrapInfo; 256],
    /// Guest kernel mode (else guest user mode).
    pub kernel_mode: bool,
    /// Kernel stack for user → kernel transitions (`stack_switch`).
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    /// Callbacks (`set_callbacks` / `callback_op`).
    pub event_callback: u64,
    pub failsafe_callback: u64,
    pub syscall_callback: u64,
    /// Entering the syscall callback masks events.
    pub syscall_masks_events: bool,
    /// Segment bases (`set_segment_base`); while the vCPU is on a CPU the live ones are in
    /// FS_BASE and KERNEL_GS_BASE (the guest may change them by loading FS/GS selectors), and
    /// they are saved here when it leaves.
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
    /// DS/ES/FS/GS while it is off its CPU (`pv::selectors`).
    pub selectors: crate::pv::selectors::DataSelectors,
    /// The LDT `MMUEXT_SET_LDT` recorded (not loaded: guest LDTs are not supported yet).
    pub ldt_base: u64,
    pub ldt_ents: u32,
    /// The guest's CR2: the address of the last page fault bounced to it (Xen's `ctrlreg[2]`),
    /// what an emulated `mov %cr2` reads.
    pub cr2: u64,
    /// x87/SSE registers and the virtual CR0.TS (`pv::fpu`).
    pub fpu: crate::pv::fpu::FpuState,
    /// Set by `sched_op`, acted on by the run loop after the hypercall.
    pub request: Request,
    console: [u8; CONSOLE_LINE],
    console_len: usize,
}

impl Vcpu {
    /// Back to the all-zero state the domain was created with (registers, traps, callbacks,
    /// bases, console buffer).
    pub fn reset(&mut self) {
        self.regs = GuestRegs::default();
        self.trap_table = [TrapInfo::default(); 256];
        self.fpu.reset(None);
        self.kernel_mode = false;
        self.kernel_ss = 0;
        self.kernel_sp = 0;
        self.event_callback = 0;
        self.failsafe_callback = 0;
        self.syscall_callback = 0;
        self.syscall_masks_events = false;
        self.fs_base = 0;
        self.gs_base_kernel = 0;
        self.gs_base_user = 0;
        self.selectors = Default::default();
        self.ldt_base = 0;
        self.ldt_ents = 0;
        self.cr2 = 0;
        self.request = Request::None;
        self.console_len = 0;
    }

    /// Console output from the guest: whole lines are printed as `(dN) <line>`; control
    /// characters other than tab are shown as `?`. Each vCPU has its own line buffer, so lines
    /// of different vCPUs never mix.
    pub fn console_write(&mut self, dom: u16, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => self.console_flush(dom),
                b'\r' => {}
                b'\t' | 0x20..=0x7e => self.console_push(dom, b),
                _ => self.console_push(dom, b'?'),
            }
        }
    }

    fn console_push(&mut self, dom: u16, b: u8) {
        if self.console_len == CONSOLE_LINE {
            self.console_flush(dom);
        }
        self.console[self.console_len] = b;
        self.console_len += 1;
    }

    /// Prints what is buffered as one line (nothing if the buffer is empty).
    pub fn console_flush(&mut self, dom: u16) {
        if self.console_len == 0 {
            return;
        }
        let line = core::str::from_utf8(&self.console[..self.console_len]).unwrap_or("?");
        crate::console::raw(format_args!("(d{dom}) {line}\n"));
        self.console_len = 0;
    }
}

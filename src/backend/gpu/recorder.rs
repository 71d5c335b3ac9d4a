//! Recording and submitting work: the open command encoder and its open compute pass (the
//! dispatches between two buffer copies share one pass), each dispatch's parameters in the
//! uniform arena and its bind group from a cache, submission
//! (with error scopes naming the kernels of the batch), scalar readbacks, work counters,
//! and the sink for errors wgpu reports outside any scope.
//!
//! Nothing runs when an operation is called: it is recorded, and the encoder is submitted at
//! `read_slots`, `download`, `sync`, before a host `write`, or when an arena fills up. The
//! uniform and gather-index arenas are host vectors written to their device buffers right
//! before the submit, so a later dispatch's parameters never overwrite an earlier one's
//! before it ran.

use super::params::UNIFORM_BIND_SIZE;
use super::pipelines::K;
use super::{kernel_err, lock, BResult, GpuBackend};
use crate::backend::{BackendError, Counters, Slot, NUM_SLOTS};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes of the uniform arena (one submission's worth of dispatch parameters).
pub(crate) const UNIFORM_ARENA: u64 = 1 << 20;
/// Partial-sum vec4 entries available to the reductions between two stage-2 dispatches.
pub(crate) const PART_CAP: u32 = 16384;
/// Most bind groups kept; the cache starts over beyond it (and at every allocation).
const BIND_CACHE: usize = 1024;
/// Dispatches one submission can make conditional on a device-decided ladder (entries of
/// the indirect arena, three `u32` each).
pub(crate) const COND_CAP: u32 = 4096;
/// Most reductions one stage-2 (`finalize`) dispatch completes.
pub(crate) const MAX_PENDING: usize = 8;

/// A reduction whose partial sums are recorded and whose stage 2 is not: its partials are
/// those recorded after the previous pending reduction's, up to `end`; its sums go to the
/// `k` slots from `slot` (lane 0 times `scale0`), added to the old values when
/// `accumulate`. Stage 2 runs for all pending reductions at once, in order, before the
/// slots are read or the partials run out (`ops/reduce.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingSum {
    pub end: u32,
    pub slot: u32,
    pub k: u32,
    pub scale0: f32,
    pub accumulate: bool,
}

/// Everything that changes while recording.
pub(crate) struct State {
    /// The open compute pass of `enc`: consecutive dispatches share it (on Metal a pass is
    /// a compute command encoder of its own; wgpu still orders the dispatches inside it).
    /// It is ended before the encoder records anything else (a copy) and before a submit.
    /// wgpu encodes and validates passes at `finish`, so a shared pass reports errors
    /// exactly as one pass per dispatch did: at the submit naming the batch's kernels.
    pass: Option<wgpu::ComputePass<'static>>,
    pub(crate) enc: Option<wgpu::CommandEncoder>,
    /// Kernels recorded since the last submit (error messages).
    pub(crate) batch: Vec<&'static str>,
    pub(crate) uni_cpu: Vec<u8>,
    pub(crate) uni_buf: wgpu::Buffer,
    pub(crate) idx_cpu: Vec<u32>,
    pub(crate) idx_buf: wgpu::Buffer,
    /// Dispatches recorded after a device-decided ladder (`ops/ladder.rs`) until the next
    /// submit are indirect, their workgroup counts in this arena (written at the submit
    /// like the uniforms): a ladder that fails zeroes the counts recorded after it, so the
    /// work the host will redo costs the device nothing.
    pub(crate) conditional: bool,
    pub(crate) cond_cpu: Vec<u32>,
    pub(crate) cond_buf: wgpu::Buffer,
    /// Per-workgroup partial sums of stage-1 reductions (vec4 each).
    pub(crate) partials: wgpu::Buffer,
    /// Partials in use: those of the pending reductions and of the one being recorded.
    pub(crate) part_next: u32,
    /// Reductions waiting for stage 2, in recording order.
    pub(crate) pending: Vec<PendingSum>,
    /// Bind groups by kernel and storage buffers: a problem's buffers are fixed, so a
    /// sweep's dispatches find theirs here instead of creating one each. An entry keeps its
    /// buffers alive, so the cache is emptied when matrices are allocated (a new problem or
    /// phase; never inside a sweep) and when it grows past [`BIND_CACHE`].
    pub(crate) bind_groups: HashMap<(K, Vec<wgpu::Buffer>), wgpu::BindGroup>,
    /// The scalar register file: [`NUM_SLOTS`] `f32`.
    pub(crate) slots: wgpu::Buffer,
    pub(crate) slot_staging: wgpu::Buffer,
    /// Per-group scratch of the chunked group kernels (grown on demand).
    pub(crate) scratch: wgpu::Buffer,
    /// The partial products of split-K matmuls (grown on demand).
    pub(crate) split: wgpu::Buffer,
    /// Bound where a kernel's optional operand is absent (no bias).
    pub(crate) dummy: wgpu::Buffer,
    pub(crate) dl_staging: Option<wgpu::Buffer>,
}

impl State {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let mk = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        State {
            pass: None,
            enc: None,
            batch: Vec::new(),
            uni_cpu: Vec::with_capacity(UNIFORM_ARENA as usize),
            uni_buf: mk("uniform arena", UNIFORM_ARENA, U::UNIFORM | U::COPY_DST),
            idx_cpu: Vec::new(),
            idx_buf: mk("gather index arena", 4096 * 4, U::STORAGE | U::COPY_DST),
            conditional: false,
            cond_cpu: Vec::new(),
            cond_buf: mk(
                "conditional dispatch arena",
                COND_CAP as u64 * 12,
                U::STORAGE | U::INDIRECT | U::COPY_DST,
            ),
            partials: mk("partials", PART_CAP as u64 * 16, U::STORAGE),
            part_next: 0,
            pending: Vec::with_capacity(MAX_PENDING),
            bind_groups: HashMap::new(),
            slots: mk(
                "slots",
                NUM_SLOTS as u64 * 4,
                U::STORAGE | U::COPY_SRC | U::COPY_DST,
            ),
            slot_staging: mk(
                "slot staging",
                NUM_SLOTS as u64 * 4,
                U::MAP_READ | U::COPY_DST,
            ),
            scratch: mk(
                "group scratch",
                4096 * 4,
                U::STORAGE | U::COPY_SRC | U::COPY_DST,
            ),
            dummy: mk("dummy", 16, U::STORAGE),
            split: mk("split-K partials", 16, U::STORAGE),
            dl_staging: None,
        }
    }
}

/// Byte stride of one dispatch's slice of the uniform arena: the bound size rounded up to
/// the device's dynamic-offset alignment.
pub(crate) fn uniform_stride(limits: &wgpu::Limits) -> u64 {
    let align = (limits.min_uniform_buffer_offset_alignment as u64).max(1);
    UNIFORM_BIND_SIZE.div_ceil(align) * align
}

/// The work counters behind [`crate::backend::Backend::counters`].
#[derive(Default)]
pub(crate) struct Count {
    dispatches: AtomicU64,
    readbacks: AtomicU64,
    submits: AtomicU64,
}

/// Errors wgpu reports outside error scopes: an uncaptured error while recording (wgpu
/// would otherwise panic) is stored with the kernel being recorded, a device loss with its
/// reason, and both are returned by the next check.
pub(crate) struct ErrorSink {
    /// (kernel, message).
    errors: Arc<Mutex<Vec<(String, String)>>>,
    has_error: Arc<AtomicBool>,
    current: Arc<Mutex<&'static str>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl ErrorSink {
    /// Install the uncaptured-error handler and the device-lost callback on `device`.
    pub(crate) fn install(device: &wgpu::Device) -> Self {
        let errors: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let has_error = Arc::new(AtomicBool::new(false));
        let current: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("setup"));
        let lost: Arc<Mutex<Option<String>>> = Arc::default();
        {
            let (errors, has1, current) = (errors.clone(), has_error.clone(), current.clone());
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let k = *lock(&current);
                lock(&errors).push((k.to_string(), e.to_string()));
                has1.store(true, Ordering::SeqCst);
            }));
            let lost2 = lost.clone();
            let has2 = has_error.clone();
            device.set_device_lost_callback(move |reason, msg| {
                *lock(&lost2) = Some(format!("{reason:?}: {msg}"));
                has2.store(true, Ordering::SeqCst);
            });
        }
        ErrorSink {
            errors,
            has_error,
            current,
            lost,
        }
    }

    /// Name the kernel (or step) that errors raised from now on belong to.
    pub(crate) fn set_current(&self, k: &'static str) {
        *lock(&self.current) = k;
    }

    /// Errors reported asynchronously (uncaptured handler, device loss).
    pub(crate) fn check(&self, during: &str) -> BResult<()> {
        if !self.has_error.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(msg) = lock(&self.lost).clone() {
            return Err(BackendError::Lost(format!("{msg} (during {during})")));
        }
        let errs: Vec<(String, String)> = std::mem::take(&mut *lock(&self.errors));
        self.has_error.store(false, Ordering::SeqCst);
        match errs.into_iter().next() {
            Some((k, m)) => Err(kernel_err(k, m)),
            None => Ok(()),
        }
    }
}

impl GpuBackend {
    fn new_encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sparse-alm"),
            })
    }

    /// The open encoder (opened on first use after a submit), its compute pass ended so
    /// that it can record a copy.
    pub(crate) fn encoder<'a>(&self, st: &'a mut State) -> &'a mut wgpu::CommandEncoder {
        st.pass = None;
        st.enc.get_or_insert_with(|| self.new_encoder())
    }

    /// Record one dispatch of kernel `k` with parameters `params` and storage buffers
    /// `bufs` (in the order of the kernel's binding list).
    pub(crate) fn dispatch(
        &self,
        st: &mut State,
        k: K,
        params: &[u8],
        bufs: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> BResult<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let maxg = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > maxg) {
            return Err(kernel_err(
                k.name(),
                format!("grid {groups:?} exceeds {maxg} per dimension"),
            ));
        }
        let pipe = self
            .pipelines
            .get(&self.device, k, (self.verbose, self.shader_checks))?;
        let d = k.def();
        debug_assert_eq!(d.binds.len(), bufs.len(), "{}", k.name());
        if st.uni_cpu.len() as u64 + self.uni_stride > UNIFORM_ARENA {
            self.flush(st)?;
        }
        let off = st.uni_cpu.len();
        st.uni_cpu.extend_from_slice(params);
        st.uni_cpu.resize(off + self.uni_stride as usize, 0);
        self.errors.set_current(k.name());
        let key = (k, bufs.iter().map(|&b| b.clone()).collect::<Vec<_>>());
        let bg = match st.bind_groups.get(&key) {
            Some(bg) => bg.clone(),
            None => {
                let bg = self.bind_group(st, k, &pipe.layout, bufs);
                if st.bind_groups.len() >= BIND_CACHE {
                    st.bind_groups.clear();
                }
                st.bind_groups.insert(key, bg.clone());
                bg
            }
        };
        let pass = match &mut st.pass {
            Some(pass) => pass,
            None => {
                let enc = st.enc.get_or_insert_with(|| self.new_encoder());
                let pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("sparse-alm"),
                    timestamp_writes: None,
                });
                // The pass is ended (dropped) before the encoder is used again.
                st.pass.insert(pass.forget_lifetime())
            }
        };
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, &bg, &[off as u32]);
        let entry = st.cond_cpu.len() as u32 / 3;
        if st.conditional && k != K::LadderSelect && entry < COND_CAP {
            st.cond_cpu.extend_from_slice(&groups);
            let pass = st.pass.as_mut().expect("the pass opened above");
            pass.dispatch_workgroups_indirect(&st.cond_buf, entry as u64 * 12);
        } else {
            let pass = st.pass.as_mut().expect("the pass opened above");
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        if st.batch.last() != Some(&k.name()) && st.batch.len() < 64 {
            st.batch.push(k.name());
        }
        self.count.dispatches.fetch_add(1, Ordering::Relaxed);
        self.errors.check(k.name())
    }

    /// Kernel `k`'s bind group: the uniform arena's window at binding 0, then `bufs` at
    /// the kernel's storage bindings.
    fn bind_group(
        &self,
        st: &State,
        k: K,
        layout: &wgpu::BindGroupLayout,
        bufs: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let mut entries = Vec::with_capacity(bufs.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &st.uni_buf,
                offset: 0,
                size: wgpu::BufferSize::new(UNIFORM_BIND_SIZE),
            }),
        });
        for (&(b, _), buf) in k.def().binds.iter().zip(bufs) {
            entries.push(wgpu::BindGroupEntry {
                binding: b,
                resource: buf.as_entire_binding(),
            });
        }
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.name()),
            layout,
            entries: &entries,
        })
    }

    /// Submit everything recorded so far (no wait). Errors raised by the submission are
    /// returned naming the kernels it held.
    pub(crate) fn flush(&self, st: &mut State) -> BResult<()> {
        st.pass = None;
        st.conditional = false;
        let Some(enc) = st.enc.take() else {
            st.uni_cpu.clear();
            st.idx_cpu.clear();
            st.cond_cpu.clear();
            return self.errors.check("submit");
        };
        self.errors.set_current("submit");
        let s_oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let s_int = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let s_val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        if !st.uni_cpu.is_empty() {
            self.queue.write_buffer(&st.uni_buf, 0, &st.uni_cpu);
        }
        if !st.idx_cpu.is_empty() {
            self.queue
                .write_buffer(&st.idx_buf, 0, bytemuck::cast_slice(&st.idx_cpu));
        }
        if !st.cond_cpu.is_empty() {
            self.queue
                .write_buffer(&st.cond_buf, 0, bytemuck::cast_slice(&st.cond_cpu));
        }
        self.queue.submit([enc.finish()]);
        let e_val = pollster::block_on(s_val.pop());
        let e_int = pollster::block_on(s_int.pop());
        let e_oom = pollster::block_on(s_oom.pop());
        st.uni_cpu.clear();
        st.idx_cpu.clear();
        st.cond_cpu.clear();
        let batch = std::mem::take(&mut st.batch);
        self.count.submits.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = e_val.or(e_int).or(e_oom) {
            let names = if batch.is_empty() {
                "submit".to_string()
            } else {
                batch.join(",")
            };
            return Err(kernel_err(names, e.to_string()));
        }
        self.errors.check("submit")
    }

    /// Block until the device is idle.
    pub(crate) fn wait(&self) -> BResult<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::Device(format!("poll: {e}")))?;
        self.errors.check("wait")
    }

    /// Map `buf` (MAP_READ) for `size` bytes, after everything submitted so far.
    pub(crate) fn map_read(&self, buf: &wgpu::Buffer, size: u64, what: &str) -> BResult<Vec<u8>> {
        // wgpu's compute-example pattern: the callback fires a oneshot channel during the
        // blocking poll, and the receiver is then ready at once.
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        buf.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match pollster::block_on(rx.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(kernel_err(what, format!("map failed: {e}"))),
            None => {
                return Err(BackendError::Lost(format!(
                    "{what}: map callback never ran"
                )))
            }
        }
        let bytes = {
            let view = buf
                .get_mapped_range(0..size)
                .map_err(|e| kernel_err(what, format!("mapped range: {e}")))?;
            view.to_vec()
        };
        buf.unmap();
        Ok(bytes)
    }

    /// [`crate::backend::Backend::read_slots`]: copy the slot buffer to its staging buffer,
    /// submit, and map it: exactly one readback per call. (Slot indices are checked by the
    /// caller's contract.)
    pub(crate) fn read_slot_values(&self, slots: &[Slot]) -> BResult<Vec<f64>> {
        let mut st = lock(&self.st);
        self.finalize_pending(&mut st)?;
        let (src, dst) = (st.slots.clone(), st.slot_staging.clone());
        let bytes = NUM_SLOTS as u64 * 4;
        self.encoder(&mut st)
            .copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        st.batch.push("read_slots");
        self.flush(&mut st)?;
        self.count.readbacks.fetch_add(1, Ordering::Relaxed);
        let raw = self.map_read(&dst, bytes, "read_slots")?;
        let vals: &[f32] = bytemuck::cast_slice(&raw);
        Ok(slots.iter().map(|&s| vals[s] as f64).collect())
    }

    /// Submit everything recorded and wait until the device is idle.
    pub(crate) fn submit_and_wait(&self) -> BResult<()> {
        let mut st = lock(&self.st);
        self.flush(&mut st)?;
        drop(st);
        self.wait()
    }

    pub(crate) fn counters_now(&self) -> Counters {
        Counters {
            dispatches: self.count.dispatches.load(Ordering::Relaxed),
            readbacks: self.count.readbacks.load(Ordering::Relaxed),
            submits: self.count.submits.load(Ordering::Relaxed),
        }
    }
}

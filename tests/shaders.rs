//! Every shader module parses and validates with naga (the WGSL front end wgpu itself uses).
//! A module is `shaders/common.wgsl` (shared declarations) followed by one `shaders/*.wgsl`
//! file (after the file it extends, see [`EXTENDS`]), composed exactly as
//! `src/backend/gpu/pipelines.rs` does with `concat!`. The directory is enumerated, so new
//! shaders are covered automatically. A module validates without subgroup operations unless
//! it is listed in [`SUBGROUP_FILES`] (compiled only on devices that have them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const COMMON: &str = "common.wgsl";

/// Kernel files composed after another kernel file, whose declarations they use.
const EXTENDS: &[(&str, &str)] = &[("matmul_sg.wgsl", "matmul.wgsl")];

/// Kernel files that use subgroup operations.
const SUBGROUP_FILES: &[&str] = &["matmul_sg.wgsl"];

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The kernel files: every `shaders/*.wgsl` but `common.wgsl`.
fn shader_files() -> Vec<PathBuf> {
    let dir = shader_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .filter(|p| p.file_name().is_some_and(|n| n != COMMON))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no shaders found in {}", dir.display());
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().to_string()
}

/// `common.wgsl` followed by the file (after the one it extends), as `Src::code` composes
/// them.
fn composed(path: &Path) -> String {
    let mut src = read(&shader_dir().join(COMMON));
    if let Some((_, base)) = EXTENDS.iter().find(|(f, _)| *f == name(path)) {
        src += &read(&shader_dir().join(base));
    }
    src + &read(path)
}

/// Parse and validate; the error text points into `src` (labelled `label`).
fn validate(
    src: &str,
    label: &str,
    subgroups: bool,
) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| {
        format!(
            "{label}: parse error\n{}",
            e.emit_to_string_with_path(src, label)
        )
    })?;
    let caps = if subgroups {
        naga::valid::Capabilities::SUBGROUP
    } else {
        naga::valid::Capabilities::empty()
    };
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    if subgroups {
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator
        .validate(&module)
        .map_err(|e| format!("{label}: validation error\n{}", e.emit_to_string(src)))?;
    Ok((module, info))
}

/// Parse and validate every composed module, failing with all the errors at once.
fn modules() -> Vec<(String, naga::Module, naga::valid::ModuleInfo)> {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for path in shader_files() {
        let label = format!("{COMMON} + {}", name(&path));
        let subgroups = SUBGROUP_FILES.contains(&name(&path).as_str());
        match validate(&composed(&path), &label, subgroups) {
            Ok((m, info)) => out.push((name(&path), m, info)),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} shader module(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    out
}

/// The shared prelude stands on its own: no bindings, no entry points, and no reference to
/// anything a kernel file declares.
#[test]
fn common_validates_alone() {
    let src = read(&shader_dir().join(COMMON));
    let (module, _) = validate(&src, COMMON, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(module.entry_points.is_empty(), "{COMMON} has entry points");
    for (_, g) in module.global_variables.iter() {
        assert!(
            g.binding.is_none(),
            "{COMMON} declares the binding of {:?}: bindings belong in each kernel file",
            g.name
        );
    }
}

#[test]
fn every_shader_module_parses_and_validates() {
    for (name, module, _) in modules() {
        let entries: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(!entries.is_empty(), "{name}: no entry points");
        for ep in &module.entry_points {
            assert_eq!(
                ep.stage,
                naga::ShaderStage::Compute,
                "{name}:{} is not a compute entry point",
                ep.name
            );
        }
        // Two globals on one (group, binding) would be a clash between common and the file.
        let mut seen = HashMap::new();
        for (_, g) in module.global_variables.iter() {
            if let Some(b) = &g.binding {
                if let Some(other) = seen.insert((b.group, b.binding), g.name.clone()) {
                    panic!(
                        "{name}: {:?} and {other:?} share @group({}) @binding({})",
                        g.name, b.group, b.binding
                    );
                }
            }
        }
        eprintln!("ok {name}: {}", entries.join(", "));
    }
}

/// Validation with only WebGPU's baseline limits: at most 256 invocations and 16 KiB of
/// workgroup memory per workgroup (counting only the workgroup variables an entry point
/// uses, e.g. common's reduction scratch next to matmul's tiles).
#[test]
fn shaders_fit_baseline_limits() {
    for (name, module, info) in modules() {
        for (idx, ep) in module.entry_points.iter().enumerate() {
            let [x, y, z] = ep.workgroup_size;
            assert!(
                x * y * z <= 256,
                "{name}:{} workgroup {x}×{y}×{z} > 256",
                ep.name
            );
            let uses = info.get_entry_point(idx);
            let shared: u32 = module
                .global_variables
                .iter()
                .filter(|(h, g)| g.space == naga::AddressSpace::WorkGroup && !uses[*h].is_empty())
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            eprintln!("{name}:{} workgroup memory {shared} bytes", ep.name);
            assert!(
                shared <= 16384,
                "{name}:{} uses {shared} bytes of workgroup memory > 16 KiB",
                ep.name
            );
        }
    }
}

/// Every kernel file is compiled into the crate (named in `src/backend/gpu/pipelines.rs`).
#[test]
fn every_shader_is_referenced_by_the_kernel_table() {
    let kernels =
        read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/backend/gpu/pipelines.rs"));
    for path in shader_files() {
        let name = name(&path);
        let quoted = format!("\"{name}\"");
        assert!(
            kernels
                .lines()
                .any(|l| l.contains("module!(") && l.contains(&quoted)),
            "shaders/{name} is not composed into a module in src/backend/gpu/pipelines.rs"
        );
    }
    assert!(
        kernels.contains(&format!("shaders/{COMMON}")),
        "src/backend/gpu/pipelines.rs does not prepend shaders/{COMMON}"
    );
}

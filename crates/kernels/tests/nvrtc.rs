//! NVRTC: every family compiles for sm_80 and sm_90, with exactly the kernels the emulated GPU
//! compiles from the same source, and no kernel spills registers (ptxas -v); a broken source is
//! a `Compile` error with the log.
//!
//! Needs libnvrtc (`pip install nvidia-cuda-nvrtc`, then put
//! `site-packages/nvidia/cu13/lib` on `LD_LIBRARY_PATH`); without it these tests print a skip
//! reason, unless `CURVATURE_REQUIRE_NVRTC=1`, when they fail.

use curvature_kernels::{
    compile_cubin, compile_cubin_log, compile_ptx, compile_source, compiled_kernel_names,
    emulated_kernel_names, nvrtc_available, ptx_entry_names, KernelError, KernelFamily,
};

const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc_available() {
        return true;
    }
    if std::env::var("CURVATURE_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!("{test}: CURVATURE_REQUIRE_NVRTC=1 but libnvrtc cannot be loaded");
    }
    eprintln!(
        "skipping {test}: libnvrtc cannot be loaded (pip install nvidia-cuda-nvrtc and add \
         site-packages/nvidia/cu13/lib to LD_LIBRARY_PATH)"
    );
    false
}

#[test]
fn every_family_compiles_with_its_kernels_nvrtc() {
    if !nvrtc_or_skip("every_family_compiles_with_its_kernels_nvrtc") {
        return;
    }
    for family in KernelFamily::all() {
        for arch in ARCHS {
            let ptx =
                compile_ptx(*family, arch).unwrap_or_else(|e| panic!("{}: {e}", family.name()));
            let mut entries = ptx_entry_names(&ptx);
            let mut emulated = emulated_kernel_names(*family);
            assert!(!entries.is_empty(), "{}: no PTX entries", family.name());
            entries.sort();
            emulated.sort();
            assert_eq!(
                entries,
                emulated,
                "{} for {arch}: PTX entries vs the emulated GPU's kernels",
                family.name()
            );
            // The SASS a real GPU loads is an ELF image (one arch: CUBIN builds are slow).
            if arch == "sm_90" {
                let cubin = compile_cubin(*family, arch)
                    .unwrap_or_else(|e| panic!("{}: {e}", family.name()));
                assert!(
                    cubin.starts_with(b"\x7fELF"),
                    "{}: CUBIN is not ELF",
                    family.name()
                );
            }
        }
    }
}

#[test]
fn race_test_source_compiles_nvrtc() {
    if !nvrtc_or_skip("race_test_source_compiles_nvrtc") {
        return;
    }
    let source = format!(
        "{}\n{}",
        include_str!("../../../kernels/common.cuh"),
        include_str!("../../../kernels/testing/race_test.cu")
    );
    for arch in ARCHS {
        let ptx = compile_source("race_test", &source, arch).expect("race_test compiles");
        assert_eq!(ptx_entry_names(&ptx).len(), 18);
    }
}

#[test]
fn no_kernel_spills_nvrtc() {
    if !nvrtc_or_skip("no_kernel_spills_nvrtc") {
        return;
    }
    for family in KernelFamily::all() {
        for arch in ARCHS {
            let log = compile_cubin_log(*family, arch)
                .unwrap_or_else(|e| panic!("{}: {e}", family.name()));
            let kernels = compiled_kernel_names(*family, arch)
                .unwrap_or_else(|e| panic!("{}: {e}", family.name()));
            for kernel in &kernels {
                assert!(
                    log.contains(&format!("Compiling entry function '{kernel}'")),
                    "{} for {arch}: no ptxas report for {kernel}, log:\n{log}",
                    family.name()
                );
            }
            let reports: Vec<&str> = log.lines().filter(|l| l.contains("spill stores")).collect();
            assert!(
                reports.len() >= kernels.len(),
                "{} for {arch}: expected a ptxas report per kernel, log:\n{log}",
                family.name()
            );
            for line in reports {
                let stores = spill_bytes(line, "spill stores");
                let loads = spill_bytes(line, "spill loads");
                assert_eq!(
                    (stores, loads),
                    (0, 0),
                    "{} for {arch} spills: {line}\n{log}",
                    family.name()
                );
            }
            for kernel in &kernels {
                let usage = resources_of(&log, kernel).unwrap_or_else(|| {
                    panic!("{kernel} ({arch}): no ptxas resource report in\n{log}")
                });
                eprintln!(
                    "kernel {kernel} {arch} registers {} spill {} smem {}",
                    usage.registers, usage.spill, usage.smem
                );
            }
        }
    }
}

/// Registers an SM holds (every architecture from sm_50 on).
const SM_REGISTERS: u64 = 65_536;

/// Every kernel declares `__launch_bounds__` (PTX `.maxntid`), and at that many threads per
/// block its registers (ptxas's count, allocated per warp in units of 256) fit one SM, on every
/// architecture: a launch at the declared block size can never fail for lack of registers.
#[test]
fn every_kernel_fits_an_sm_at_its_launch_bounds_nvrtc() {
    if !nvrtc_or_skip("every_kernel_fits_an_sm_at_its_launch_bounds_nvrtc") {
        return;
    }
    for family in KernelFamily::all() {
        for arch in ARCHS {
            let ptx = compile_ptx(*family, arch).unwrap_or_else(|e| panic!("{e}"));
            let log = compile_cubin_log(*family, arch).unwrap_or_else(|e| panic!("{e}"));
            for entry in ptx.split(".entry ").skip(1) {
                let name = entry.split('(').next().unwrap_or("").trim();
                let body_start = entry.find('{').unwrap_or(entry.len());
                let threads: u64 = entry[..body_start]
                    .split(".maxntid")
                    .nth(1)
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{name} ({arch}) declares no __launch_bounds__"));
                let registers = registers_of(&log, name)
                    .unwrap_or_else(|| panic!("no ptxas register count for {name} ({arch})"));
                let per_warp = (registers * 32).div_ceil(256) * 256;
                let needed = per_warp * threads.div_ceil(32);
                assert!(
                    needed <= SM_REGISTERS,
                    "{name} ({arch}): {registers} registers × {threads} threads needs {needed} \
                     of the SM's {SM_REGISTERS}"
                );
            }
        }
    }
}

/// ptxas's "Used N registers" for `kernel` in a `-v` log.
fn registers_of(log: &str, kernel: &str) -> Option<u64> {
    let start = log.find(&format!("Compiling entry function '{kernel}'"))?;
    let line = log[start..].lines().find(|l| l.contains("Used "))?;
    let after = line.split("Used ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

/// What ptxas reports for one kernel: registers, spilled bytes (stores + loads) and static
/// shared memory.
struct Resources {
    registers: u64,
    spill: u64,
    smem: u64,
}

/// The section of a ptxas `-v` log about `kernel`: from its "Compiling entry function" line to
/// the next one.
fn report_of<'a>(log: &'a str, kernel: &str) -> Option<&'a str> {
    let marker = format!("Compiling entry function '{kernel}'");
    let start = log.find(&marker)? + marker.len();
    let rest = &log[start..];
    let end = rest.find("Compiling entry function").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// ptxas's resource usage of `kernel` in a `-v` log.
fn resources_of(log: &str, kernel: &str) -> Option<Resources> {
    let report = report_of(log, kernel)?;
    let spill_line = report.lines().find(|l| l.contains("spill stores"))?;
    let used = report.lines().find(|l| l.contains("Used "))?;
    let registers = used
        .split("Used ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let smem = used
        .split(',')
        .find(|part| part.contains("bytes smem"))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(Resources {
        registers,
        spill: spill_bytes(spill_line, "spill stores") + spill_bytes(spill_line, "spill loads"),
        smem,
    })
}

/// The byte count in front of `what` ("N bytes spill stores") on a ptxas report line.
fn spill_bytes(line: &str, what: &str) -> u64 {
    let before = line.split(what).next().unwrap_or("");
    let number = before.trim_end().trim_end_matches("bytes").trim_end();
    let digits: String = number
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no byte count before `{what}` in: {line}"))
}

#[test]
fn broken_source_is_a_compile_error_with_log_nvrtc() {
    if !nvrtc_or_skip("broken_source_is_a_compile_error_with_log_nvrtc") {
        return;
    }
    let broken = "extern \"C\" __global__ void broken_f32(float* x) { x[0] = undefined_thing; }";
    match compile_source("broken", broken, "sm_80") {
        Err(KernelError::Compile { family, arch, log }) => {
            assert_eq!(family, "broken");
            assert_eq!(arch, "sm_80");
            assert!(
                log.contains("undefined_thing"),
                "log without the NVRTC diagnostic: {log}"
            );
            assert!(log.contains("error"), "log without an error line: {log}");
        }
        other => panic!("expected a Compile error, got {other:?}"),
    }
}

#[test]
fn missing_nvrtc_is_an_error_not_a_panic() {
    if nvrtc_available() {
        return;
    }
    assert!(matches!(
        compile_ptx(KernelFamily::Matmul, "sm_90"),
        Err(KernelError::NoNvrtc { .. })
    ));
}

#[test]
fn the_installed_nvrtc_plans_sass_for_the_tested_architectures_nvrtc() {
    if !nvrtc_or_skip("the_installed_nvrtc_plans_sass_for_the_tested_architectures_nvrtc") {
        return;
    }
    let archs = curvature_kernels::supported_archs().expect("NVRTC lists its architectures");
    let (major, minor) = curvature_kernels::nvrtc_version().expect("NVRTC reports its version");
    for (gpu, name) in [((8, 0), "A100"), ((9, 0), "H200")] {
        let toolchain = curvature_kernels::Toolchain {
            gpu,
            nvrtc_archs: archs.clone(),
            driver: (major.unsigned_abs(), minor.unsigned_abs()),
            nvrtc: (major.unsigned_abs(), minor.unsigned_abs()),
        };
        let plan = toolchain.plan(name).expect("a plan");
        let arch = gpu.0 * 10 + gpu.1;
        assert_eq!(plan.cubin, Some(format!("sm_{arch}")), "{name}: {archs:?}");
        assert_eq!(plan.ptx, Some(format!("compute_{arch}")), "{name}");
        // The planned PTX target compiles.
        compile_source(
            "plan",
            "extern \"C\" __global__ void k() {}",
            &format!("compute_{arch}"),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Every GEMM tile (split-K arrival included) stays within 128 registers without spills, so
/// two of its 256-thread blocks fit one SM, on every architecture.
#[test]
fn gemm_kernels_fit_two_blocks_per_sm_nvrtc() {
    if !nvrtc_or_skip("gemm_kernels_fit_two_blocks_per_sm_nvrtc") {
        return;
    }
    for arch in ARCHS {
        let log = compile_cubin_log(KernelFamily::Matmul, arch).unwrap_or_else(|e| panic!("{e}"));
        for kernel in [
            "gemm_small_f32",
            "gemm_small_f64",
            "gemm_large_f32",
            "gemm_large_f64",
        ] {
            let usage = resources_of(&log, kernel)
                .unwrap_or_else(|| panic!("no ptxas report for {kernel} ({arch}):\n{log}"));
            assert!(
                usage.registers <= 128 && usage.spill == 0,
                "{kernel} ({arch}): {} registers, {} bytes spilled",
                usage.registers,
                usage.spill
            );
        }
    }
}

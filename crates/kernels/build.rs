//! Build script of curvature-kernels.
//!
//! Without the `emulator` feature it only asks to rerun when `kernels/` changes. With it, it
//! compiles every kernel family (and the test-only `kernels/testing` family) with the host C++
//! compiler against `kernels/emulator/cuda_emu.h`, plus the fiber scheduler, and generates the
//! launch tables: for each `extern "C" __global__ void name(params...)` found in the
//! preprocessed source, a wrapper that unpacks `params[i]` as `*(T_i*)params[i]`. The tables,
//! one per family with the family's name beside it, are also the list of kernels each family
//! defines (`emulated_kernel_names`). `__shared__` declarations are rewritten into references
//! to the running block's shared memory (`rewrite_shared`), and the kernels are compiled with
//! GCC's `-fsanitize=thread` instrumentation, whose access hooks `kernels/emulator/emu_check.cpp`
//! defines (the shared-memory checker; no TSan runtime is linked), and with FMA contraction
//! like NVRTC's default.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/includes.rs"]
mod includes;

/// (family name, source path under `kernels/`), the same pairs as `KernelFamily` plus tests.
const FAMILIES: &[(&str, &str)] = &[
    ("elementwise", "elementwise.cu"),
    ("matmul", "matmul.cu"),
    ("matmul_tc", "matmul_tc.cu"),
    ("matmul_h16", "matmul_h16.cu"),
    ("reduce", "reduce.cu"),
    ("conv", "conv.cu"),
    ("fused", "fused.cu"),
    ("race_test", "testing/race_test.cu"),
];

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let kernels = manifest.join("../../kernels");
    println!("cargo:rerun-if-changed={}", kernels.display());
    println!("cargo::rustc-check-cfg=cfg(emu_fma)");
    for entry in walk(&kernels) {
        println!("cargo:rerun-if-changed={}", entry.display());
    }
    if env::var_os("CARGO_FEATURE_EMULATOR").is_some() {
        build_emulator(&kernels);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `body` with every line `#include "name"` naming a file under `kernels/` replaced by that
/// file's text (as `KernelFamily::source` does).
fn expand_kernel_includes(body: &str, kernels: &Path) -> String {
    includes::expand_includes(body, |name| {
        let path = kernels.join(name);
        path.is_file().then(|| read(&path))
    })
}

fn build_emulator(kernels: &Path) {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The prelude of `KernelFamily::source`: common.cuh, a newline, elementwise_ops.cuh.
    let common = format!(
        "{}\n{}",
        read(&kernels.join("common.cuh")),
        read(&kernels.join("elementwise_ops.cuh"))
    );
    let mut sources = Vec::new();
    let mut tables = String::from("extern \"C\" {\n");
    for (family, file) in FAMILIES {
        // Same text as `KernelFamily::source`: the prelude, a newline, the family file with
        // its `#include "header"` lines expanded.
        let source = format!(
            "{common}\n{}",
            expand_kernel_includes(&read(&kernels.join(file)), kernels)
        );
        let pre = out_dir.join(format!("emu_pre_{family}.cpp"));
        fs::write(&pre, &source).expect("write preprocessor input");
        let expanded = cc::Build::new()
            .cpp(true)
            .file(&pre)
            .try_expand()
            .unwrap_or_else(|e| panic!("preprocessing {file} failed: {e}"));
        let kernels_found = parse_kernels(&String::from_utf8_lossy(&expanded));
        assert!(!kernels_found.is_empty(), "no kernels found in {file}");
        let tu = out_dir.join(format!("emu_{family}.cpp"));
        fs::write(
            &tu,
            format!(
                "{}\n{}",
                rewrite_shared(&source),
                generate_table(family, &kernels_found)
            ),
        )
        .expect("write emulator translation unit");
        sources.push(tu);
        tables.push_str(&format!(
            "extern const emu_kernel_entry emu_table_{family}[];\n"
        ));
    }
    tables.push_str("extern const emu_kernel_entry* const emu_tables[] = {\n");
    for (family, _) in FAMILIES {
        tables.push_str(&format!("    emu_table_{family},\n"));
    }
    tables.push_str("    nullptr,\n};\n");
    tables.push_str("extern const char* const emu_table_names[] = {\n");
    for (family, _) in FAMILIES {
        tables.push_str(&format!("    \"{family}\",\n"));
    }
    tables.push_str("    nullptr,\n};\n}\n");
    let tables_tu = out_dir.join("emu_tables.cpp");
    fs::write(&tables_tu, tables).expect("write emulator tables");
    let runtime = [
        tables_tu,
        kernels.join("emulator/emu_runtime.cpp"),
        kernels.join("emulator/emu_memory.cpp"),
        kernels.join("emulator/emu_check.cpp"),
    ];

    let mut build = emulator_build(kernels);
    // Every memory access of a kernel calls a __tsan_* hook (the shared-memory checker).
    build
        .flag("-fsanitize=thread")
        .flag("--param=tsan-instrument-func-entry-exit=0")
        // NVRTC contracts a * b + c into FMA by default; so does the emulated GPU.
        .flag("-ffp-contract=fast");
    if host_has_fma() {
        build.flag("-mfma");
        println!("cargo:rustc-cfg=emu_fma");
    }
    build.files(&sources).compile("curvature_emu_kernels");
    emulator_build(kernels)
        .files(&runtime)
        .compile("curvature_emu_runtime");
}

fn emulator_build(kernels: &Path) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .flag("-include")
        .flag(kernels.join("emulator/cuda_emu.h").display().to_string())
        // Kernels reinterpret float arrays as float4, as CUDA code does.
        .flag("-fno-strict-aliasing")
        .flag_if_supported("-Wno-unknown-pragmas")
        .flag_if_supported("-Wno-unused-parameter");
    build
}

/// Whether the emulated kernels may use FMA instructions: the target is the machine building
/// (x86-64 with FMA). Cross builds keep the target's baseline.
fn host_has_fma() -> bool {
    let same = env::var("TARGET").ok() == env::var("HOST").ok();
    #[cfg(target_arch = "x86_64")]
    {
        same && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = same;
        false
    }
}

/// Rewrites every `__shared__` declaration (outside `//` comments) for the emulated GPU:
/// `[extern] __shared__ [__align__(n)] T name[dims];` becomes a static `emu_shared_site` and a
/// reference into the running block's shared memory (`emu_shared_ref`, see cuda_emu.h), or for
/// `extern`, a pointer to its dynamic shared memory.
fn rewrite_shared(source: &str) -> String {
    let marker = "__shared__";
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(pos) = rest.find(marker) {
        let before = &rest[..pos];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        if before[line_start..].contains("//") {
            out.push_str(&rest[..pos + marker.len()]);
            rest = &rest[pos + marker.len()..];
            continue;
        }
        let is_extern = before.trim_end().ends_with("extern");
        let kept = if is_extern {
            before.trim_end().trim_end_matches("extern")
        } else {
            before
        };
        out.push_str(kept);
        let after = &rest[pos + marker.len()..];
        let end = after
            .find(';')
            .expect("`;` ending a __shared__ declaration");
        let mut decl = after[..end].trim();
        let mut align = 16;
        if let Some(attr) = decl.strip_prefix("__align__(") {
            let close = attr.find(')').expect("`)` closing __align__(");
            let n: usize = attr[..close]
                .trim()
                .parse()
                .expect("__align__ takes a number");
            align = align.max(n);
            decl = attr[close + 1..].trim();
        }
        let (head, dims) = decl.split_at(decl.find('[').unwrap_or(decl.len()));
        let head = head.trim_end();
        let name_start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let (ty, name) = (head[..name_start].trim(), &head[name_start..]);
        assert!(
            !ty.is_empty() && !name.is_empty(),
            "unsupported __shared__ declaration: {decl}"
        );
        if is_extern {
            out.push_str(&format!(
                "{ty}* const {name} = reinterpret_cast<{ty}*>(emu_shared_dynamic());"
            ));
        } else {
            out.push_str(&format!(
                "static emu_shared_site emu_site_{name}{{\"{name}\", 0, 0}}; \
                 {ty} (&{name}){dims} = emu_shared_ref<{ty}{dims}>(&emu_site_{name}, {align});"
            ));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A kernel signature: name and (C type, parameter name) pairs.
struct Kernel {
    name: String,
    params: Vec<String>,
}

/// Finds every `extern "C" __global__ void [__launch_bounds__(n)] name(params)` in
/// preprocessed C++.
fn parse_kernels(expanded: &str) -> Vec<Kernel> {
    let text: String = expanded
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let marker = "extern \"C\" __global__ void ";
    let mut kernels = Vec::new();
    let mut rest = text.as_str();
    while let Some(pos) = rest.find(marker) {
        rest = &rest[pos + marker.len()..];
        // `__launch_bounds__(threads)` between `void` and the name (the header makes it
        // expand to nothing for the host compiler).
        if let Some(bounded) = rest.strip_prefix("__launch_bounds__") {
            let end = bounded.find(')').expect("closing ) of __launch_bounds__");
            rest = bounded[end + 1..].trim_start();
        }
        let open = rest.find('(').expect("kernel name followed by (");
        let name = rest[..open].trim().to_string();
        let close = rest[open..]
            .find(')')
            .expect("closing ) of kernel parameters")
            + open;
        let params = rest[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(param_type)
            .collect();
        kernels.push(Kernel { name, params });
        rest = &rest[close..];
    }
    kernels
}

/// The type of one parameter declaration: everything before the trailing identifier.
fn param_type(decl: &str) -> String {
    let end = decl
        .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
        .trim_end();
    assert!(!end.is_empty(), "parameter without a name: {decl}");
    end.to_string()
}

fn type_code(ty: &str) -> &'static str {
    if ty.contains('*') {
        return "ptr";
    }
    // A struct passed by value: `[const] [__grid_constant__] struct name`.
    let bare: Vec<&str> = ty
        .split_whitespace()
        .filter(|t| !matches!(*t, "const" | "__grid_constant__"))
        .collect();
    if bare.len() == 2 && bare[0] == "struct" {
        return "struct";
    }
    match ty {
        "int" => "i32",
        "unsigned" | "unsigned int" => "u32",
        "long long" | "long long int" | "cv_i64" => "i64",
        "size_t" | "unsigned long long" | "cv_u64" => "u64",
        "float" => "f32",
        "double" => "f64",
        other => panic!("kernel parameter type `{other}` is not supported by the emulator"),
    }
}

fn generate_table(family: &str, kernels: &[Kernel]) -> String {
    let mut out = String::from("namespace {\n");
    for k in kernels {
        out.push_str(&format!("void emu_w_{}(void** p) {{\n", k.name));
        let mut args = Vec::new();
        for (i, ty) in k.params.iter().enumerate() {
            out.push_str(&format!("    using A{i} = {ty};\n"));
            args.push(format!("*static_cast<A{i}*>(p[{i}])"));
        }
        out.push_str(&format!("    {}({});\n}}\n", k.name, args.join(", ")));
        // The bytes of each parameter (a by-value struct is checked and copied by its size).
        let sizes: Vec<String> = k
            .params
            .iter()
            .map(|ty| format!("sizeof({ty})"))
            .chain(["0".to_string()])
            .collect();
        out.push_str(&format!(
            "const unsigned emu_sz_{}[] = {{{}}};\n",
            k.name,
            sizes.join(", ")
        ));
    }
    out.push_str("}  // namespace\n");
    out.push_str(&format!(
        "extern \"C\" const emu_kernel_entry emu_table_{family}[] = {{\n"
    ));
    for k in kernels {
        let sig: Vec<&str> = k.params.iter().map(|t| type_code(t)).collect();
        out.push_str(&format!(
            "    {{\"{0}\", emu_w_{0}, \"{1}\", emu_sz_{0}}},\n",
            k.name,
            sig.join(",")
        ));
    }
    out.push_str("    {nullptr, nullptr, nullptr, nullptr},\n};\n");
    out
}

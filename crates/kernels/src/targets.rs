//! Which code a GPU gets: SASS (CUBIN) for its exact architecture when NVRTC can emit it, else
//! PTX for the newest architecture both NVRTC and the GPU support — which the driver must JIT,
//! so only when the driver is at least as new as NVRTC (a driver cannot JIT a newer PTX ISA:
//! NVRTC 13.5's PTX fails on a CUDA 13.0 driver). When neither fits, one error names the GPU,
//! the driver and NVRTC.

use crate::KernelError;

/// The images to try, in order, for one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlan {
    /// `sm_XY`: SASS for the GPU's own architecture.
    pub cubin: Option<String>,
    /// `compute_XY`: PTX for the driver to JIT.
    pub ptx: Option<String>,
}

/// What decides a [`TargetPlan`]: the GPU's compute capability, the architectures NVRTC can
/// compile for (as `major·10 + minor`, e.g. 90), and the driver's and NVRTC's CUDA versions
/// (`major, minor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    pub gpu: (u32, u32),
    pub nvrtc_archs: Vec<u32>,
    pub driver: (u32, u32),
    pub nvrtc: (u32, u32),
}

impl Toolchain {
    /// The plan for this GPU, or an error naming the GPU, the driver and NVRTC when no image
    /// can run on it.
    pub fn plan(&self, gpu_name: &str) -> Result<TargetPlan, KernelError> {
        let arch = self.gpu.0 * 10 + self.gpu.1;
        let cubin = self
            .nvrtc_archs
            .contains(&arch)
            .then(|| format!("sm_{arch}"));
        let newest_common = self
            .nvrtc_archs
            .iter()
            .copied()
            .filter(|&a| a <= arch)
            .max();
        let ptx = newest_common
            .filter(|_| self.driver >= self.nvrtc)
            .map(|a| format!("compute_{a}"));
        if cubin.is_none() && ptx.is_none() {
            return Err(KernelError::NoDriver {
                reason: format!(
                    "no code can run on {gpu_name} (compute capability {}.{}): NVRTC {}.{} \
                     compiles for {:?}, {}; the driver supports CUDA {}.{}{}",
                    self.gpu.0,
                    self.gpu.1,
                    self.nvrtc.0,
                    self.nvrtc.1,
                    self.nvrtc_archs,
                    match newest_common {
                        None => "none of them older than the GPU".to_string(),
                        Some(a) => format!(
                            "so SASS is out and PTX for compute_{a} needs a driver \
                                            for CUDA {}.{} or newer",
                            self.nvrtc.0, self.nvrtc.1
                        ),
                    },
                    self.driver.0,
                    self.driver.1,
                    ". Install an NVRTC that lists this architecture, or update the driver"
                ),
            });
        }
        Ok(TargetPlan { cubin, ptx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NVRTC 13.5's list.
    const NVRTC_13_5: [u32; 11] = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120];

    fn toolchain(gpu: (u32, u32), driver: (u32, u32)) -> Toolchain {
        Toolchain {
            gpu,
            nvrtc_archs: NVRTC_13_5.to_vec(),
            driver,
            nvrtc: (13, 5),
        }
    }

    #[test]
    fn a_listed_gpu_gets_its_sass_and_ptx_when_the_driver_is_new_enough() {
        let plan = toolchain((9, 0), (13, 5)).plan("H200").unwrap();
        assert_eq!(plan.cubin.as_deref(), Some("sm_90"));
        assert_eq!(plan.ptx.as_deref(), Some("compute_90"));
    }

    #[test]
    fn an_older_driver_gets_sass_only() {
        // A 580 driver (CUDA 13.0) cannot JIT NVRTC 13.5's PTX ISA.
        let plan = toolchain((9, 0), (13, 0)).plan("H100").unwrap();
        assert_eq!(plan.cubin.as_deref(), Some("sm_90"));
        assert_eq!(plan.ptx, None);
    }

    #[test]
    fn a_gpu_newer_than_nvrtc_gets_ptx_for_the_newest_common_architecture() {
        let plan = toolchain((12, 1), (13, 5)).plan("future GPU").unwrap();
        assert_eq!(plan.cubin, None);
        assert_eq!(plan.ptx.as_deref(), Some("compute_120"));
    }

    #[test]
    fn nothing_fits_is_one_error_naming_gpu_driver_and_nvrtc() {
        // sm_70 is not in NVRTC 13's list and nothing older is.
        let err = toolchain((7, 0), (13, 5)).plan("Tesla V100").unwrap_err();
        let text = err.to_string();
        for part in ["Tesla V100", "7.0", "NVRTC 13.5", "CUDA 13.5"] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        // A GPU newer than NVRTC behind an old driver.
        let err = toolchain((12, 1), (13, 0)).plan("future GPU").unwrap_err();
        let text = err.to_string();
        for part in ["future GPU", "12.1", "CUDA 13.0", "compute_120"] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }
}

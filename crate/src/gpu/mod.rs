//! The GPU runtime: device acquisition, tensors, the kernel registry, recorded programs and
//! readback. Everything above this module records work into [`Program`]s; only [`Gpu`] submits.

mod device;
mod family;
mod kernels;
mod program;
mod quant;
mod readback;
mod split;
mod tensor;
mod timer;
mod weight;

pub use device::{DeviceLimits, Gpu, GpuInfo, GpuOptions};
pub use family::{KernelChoice, KernelFamily};
pub use kernels::{Kernel, QuantOp};
pub use program::{grid, Binding, Program};
pub use quant::{repack, QuantTensor};
pub use readback::Readback;
pub use split::SplitTensor;
pub use tensor::{DType, Tensor};
pub use timer::{KernelTime, Timer};
pub use weight::Weight;

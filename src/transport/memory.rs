//! How much physical memory the machine has (for the default memory
//! budget). OS-specific, hence here.

/// Total physical memory in bytes; `None` where it cannot be asked.
pub fn physical_memory() -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let info = rustix::system::sysinfo();
        // `totalram` is a C unsigned long: 32 bits on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let total = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit).max(1));
        (total > 0).then_some(total)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine_has_some_memory() {
        #[cfg(target_os = "linux")]
        assert!(super::physical_memory().unwrap() > 64 << 20);
    }
}

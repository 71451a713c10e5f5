//! Warns when `nasm` is missing: openh264-sys2 then builds OpenH264 without its assembly,
//! silently, and the camera's encoding (its dominant cost) runs about 3x slower.

fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("nasm").is_file()));
    if !found {
        println!(
            "cargo:warning=nasm is not on PATH: OpenH264 is built without its assembly and the \
             camera encodes about 3x slower. Install it (apt-get install nasm) and rebuild \
             (cargo clean -p openh264-sys2)."
        );
    }
}

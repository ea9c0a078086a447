//! Images built in memory from files of the hub's host, with no registry and no base image:
//! a `FROM scratch` root filesystem holding the binaries asked for and every shared library
//! they load (found with `ldd`), sent to the engine as a tar build context.
//!
//! The helper image (`chaos-agent` plus `tc`, `ip`, `iptables`, `nft`, `sh`) is built this way
//! on first use, tagged with a hash of its content so a changed agent binary gets a new image and
//! an unchanged one is never rebuilt. Tests build their target images with the same code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::query_parameters::BuildImageOptions;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// The label every image and container chaoshub creates carries, with its role as the value.
pub const ROLE_LABEL: &str = "dev.chaoshub.role";

/// One entry of the root filesystem.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// A root filesystem plus its Dockerfile instructions, assembled in memory.
#[derive(Debug, Clone, Default)]
pub struct ImageContext {
    entries: BTreeMap<String, Entry>,
    instructions: Vec<String>,
}

/// Why an image could not be assembled from the host's files.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list the shared libraries of {path}: {message}")]
    Libraries { path: PathBuf, message: String },
    #[error("cannot write the build context: {0}")]
    Tar(std::io::Error),
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

/// The shared libraries `ldd` says a binary loads, the dynamic loader included. A static binary
/// has none.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::Libraries {
            path: binary.to_path_buf(),
            message: format!("cannot run ldd ({e}); install libc-bin"),
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // ldd exits non-zero for static binaries ("not a dynamic executable").
        let err = String::from_utf8_lossy(&output.stderr);
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        return Err(ImageError::Libraries {
            path: binary.to_path_buf(),
            message: err.trim().to_string(),
        });
    }
    let mut libraries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("statically linked") {
            return Ok(Vec::new());
        }
        if line.contains("=> not found") {
            return Err(ImageError::Libraries {
                path: binary.to_path_buf(),
                message: format!("a library is missing on this host: {line}"),
            });
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`;
        // `linux-vdso.so.1 (0x…)` lives in the kernel and has no file.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libraries.push(PathBuf::from(p));
        }
    }
    Ok(libraries)
}

impl ImageContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file with the given content and permission bits at `image_path`.
    pub fn add_file(&mut self, image_path: &str, data: Vec<u8>, mode: u32) {
        self.entries
            .insert(clean(image_path), Entry::File { data, mode });
    }

    pub fn add_symlink(&mut self, image_path: &str, target: &str) {
        self.entries
            .insert(clean(image_path), Entry::Symlink(target.to_string()));
    }

    /// Adds a Dockerfile instruction after `FROM scratch` and the root filesystem copy.
    pub fn instruction(&mut self, line: impl Into<String>) {
        self.instructions.push(line.into());
    }

    /// Copies a host file (symlinks followed) to `image_path`.
    pub fn add_host_file(
        &mut self,
        host_path: &Path,
        image_path: &str,
        mode: u32,
    ) -> Result<(), ImageError> {
        let data = std::fs::read(host_path).map_err(|source| ImageError::Read {
            path: host_path.to_path_buf(),
            source,
        })?;
        self.add_file(image_path, data, mode);
        Ok(())
    }

    /// Copies a host binary to `image_path` and each shared library it loads to the path it has
    /// on the host, where the loader looks for it.
    pub fn add_host_binary(
        &mut self,
        host_path: &Path,
        image_path: &str,
    ) -> Result<(), ImageError> {
        self.add_host_file(host_path, image_path, 0o755)?;
        self.add_libraries_of(host_path)
    }

    /// Copies the shared libraries a host binary or plugin loads.
    pub fn add_libraries_of(&mut self, host_path: &Path) -> Result<(), ImageError> {
        for library in shared_libraries(host_path)? {
            let image_path = library.to_string_lossy().into_owned();
            if !self.entries.contains_key(&clean(&image_path)) {
                self.add_host_file(&library, &image_path, 0o755)?;
            }
        }
        Ok(())
    }

    /// The Dockerfile that copies the root filesystem into an empty image.
    fn dockerfile(&self) -> String {
        let mut text = String::from("FROM scratch\nCOPY rootfs/ /\n");
        for line in &self.instructions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// The build context as an uncompressed tar. Entries carry fixed owners and times, so the
    /// same content always gives the same bytes (and the same content hash).
    pub fn to_tar(&self) -> Result<Vec<u8>, ImageError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dirs: std::collections::BTreeSet<String> = Default::default();
        for path in self.entries.keys() {
            let mut parent = Path::new(path).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(p.to_string_lossy().into_owned());
                parent = p.parent();
            }
        }
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h
        };
        let io = ImageError::Tar;
        let mut root = header(tar::EntryType::Directory, 0o755, 0);
        builder
            .append_data(&mut root, "rootfs/", std::io::empty())
            .map_err(io)?;
        for dir in &dirs {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            builder
                .append_data(&mut h, format!("rootfs/{dir}/"), std::io::empty())
                .map_err(io)?;
        }
        for (path, entry) in &self.entries {
            let name = format!("rootfs/{path}");
            match entry {
                Entry::File { data, mode } => {
                    let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                    builder
                        .append_data(&mut h, &name, data.as_slice())
                        .map_err(io)?;
                }
                Entry::Symlink(target) => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                    builder.append_link(&mut h, &name, target).map_err(io)?;
                }
            }
        }
        let dockerfile = self.dockerfile();
        let mut h = header(tar::EntryType::Regular, 0o644, dockerfile.len() as u64);
        builder
            .append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
            .map_err(io)?;
        builder.into_inner().map_err(io)
    }

    /// A short hash of the whole context, for content-addressed tags.
    pub fn content_hash(&self) -> Result<String, ImageError> {
        let digest = Sha256::digest(self.to_tar()?);
        Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }
}

/// Builds `context` into an image tagged `tag` with the classic builder (no BuildKit session,
/// nothing pulled: the Dockerfile starts `FROM scratch`). Returns the engine's message on error.
pub async fn build_image(docker: &Docker, tag: &str, context: &ImageContext) -> Result<(), String> {
    let tar = context.to_tar().map_err(|e| e.to_string())?;
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(format!(
                        "building image {tag} failed: {}",
                        detail.message.unwrap_or_default()
                    ));
                }
                if let Some(line) = info.stream {
                    log.push_str(&line);
                }
            }
            Err(e) => return Err(format!("building image {tag} failed: {e}\n{log}")),
        }
    }
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "building image {tag} reported success but the image is not there ({e}):\n{log}"
        )),
    }
}

/// Where the helper's tools live on a Debian-like host, and the names they get in the image.
const TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/tc", "/usr/sbin/tc"),
    ("/usr/sbin/ip", "/usr/sbin/ip"),
    ("/usr/sbin/nft", "/usr/sbin/nft"),
    ("/bin/sh", "/bin/sh"),
];

/// The names `xtables-*-multi` answers to (it dispatches on its own name).
const XTABLES_NAMES: &[&str] = &[
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
];

/// Assembles the helper image: the agent at `/usr/local/bin/chaos-agent` and the network tools
/// it drives, each with its libraries. A missing optional tool is skipped (the agent probes what
/// it has); a missing agent binary is an error.
pub fn helper_context(agent_binary: &Path) -> Result<ImageContext, ImageError> {
    let mut context = ImageContext::new();
    context.add_host_binary(agent_binary, "/usr/local/bin/chaos-agent")?;
    for (host, image) in TOOLS {
        let host = Path::new(host);
        if host.exists() {
            context.add_host_binary(host, image)?;
        }
    }
    // iptables: the host's choice (nft or legacy) under the usual names, the other variant
    // under its own suffix, and the extension modules both load at run time.
    let chosen = std::fs::canonicalize("/usr/sbin/iptables").ok();
    for multi in ["xtables-nft-multi", "xtables-legacy-multi"] {
        let host = Path::new("/usr/sbin").join(multi);
        if !host.exists() {
            continue;
        }
        context.add_host_binary(&host, &format!("/usr/sbin/{multi}"))?;
        let variant = if multi.contains("nft") {
            "nft"
        } else {
            "legacy"
        };
        for name in XTABLES_NAMES {
            let (base, rest) = name.split_once('-').map_or((*name, ""), |(b, r)| (b, r));
            let suffixed = if rest.is_empty() {
                format!("{base}-{variant}")
            } else {
                format!("{base}-{variant}-{rest}")
            };
            context.add_symlink(&format!("/usr/sbin/{suffixed}"), multi);
            if chosen.as_deref() == Some(host.as_path()) {
                context.add_symlink(&format!("/usr/sbin/{name}"), multi);
            }
        }
    }
    for dir in [
        "/usr/lib/x86_64-linux-gnu/xtables",
        "/usr/lib/aarch64-linux-gnu/xtables",
        "/usr/lib/xtables",
    ] {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "so") {
                context.add_host_file(&path, &path.to_string_lossy(), 0o644)?;
                context.add_libraries_of(&path)?;
            }
        }
    }
    // Name databases iptables and tc consult for `-p tcp` and friends.
    for file in ["/etc/protocols", "/etc/services", "/etc/ethertypes"] {
        let path = Path::new(file);
        if path.exists() {
            context.add_host_file(path, file, 0o644)?;
        }
    }
    context.add_file("/tmp/.keep", Vec::new(), 0o644);
    context.add_file("/state/.keep", Vec::new(), 0o644);
    context.instruction(format!("LABEL {ROLE_LABEL}=helper-image"));
    context.instruction("ENTRYPOINT [\"/usr/local/bin/chaos-agent\"]");
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_is_deterministic_and_holds_parents() {
        let mut a = ImageContext::new();
        a.add_file("/usr/bin/x", b"hello".to_vec(), 0o755);
        a.add_symlink("/usr/bin/y", "x");
        let mut b = ImageContext::new();
        b.add_symlink("/usr/bin/y", "x");
        b.add_file("/usr/bin/x", b"hello".to_vec(), 0o755);
        assert_eq!(a.content_hash().unwrap(), b.content_hash().unwrap());
        let tar = a.to_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "rootfs/",
                "rootfs/usr/",
                "rootfs/usr/bin/",
                "rootfs/usr/bin/x",
                "rootfs/usr/bin/y",
                "Dockerfile"
            ]
        );
    }

    #[test]
    fn ldd_finds_the_loader_of_a_dynamic_binary() {
        let libs = shared_libraries(Path::new("/bin/sh")).unwrap();
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
    }
}

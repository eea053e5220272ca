//! A plugin's manifest: who made it, which version it is, which contract and worlds it
//! implements and which limits it asks for. It travels inside the component as a custom
//! section named [`SECTION`] (JSON), so that one `.wasm` file is the whole package;
//! `twinsync plugin pack` writes it from a `plugin.toml`.
//!
//! A component is a sequence of sections (id byte, LEB128 size, payload); a custom section
//! (id 0) is skipped by every runtime, so appending one changes nothing about what runs.
//! Reading walks the top-level sections only, each bounded by the file's length.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runtime::Limits;

/// The name of the custom section that holds the manifest.
pub const SECTION: &str = "twinsync-manifest";
/// The largest manifest accepted, in bytes of JSON.
pub const MAX_BYTES: usize = 64 << 10;

/// What a vendor says about a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Lower-case letters, digits and `-`, for example `tag-origin`.
    pub name: String,
    pub vendor: String,
    /// Semantic version, for example `1.2.0` or `2.0.0-rc.1`.
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The version of `twinsync:processor` it was built for, for example `0.1.0`.
    pub contract: String,
    /// `incoming-processor` and/or `outgoing-processor`.
    pub worlds: Vec<String>,
    /// Limits the plugin asks for: it runs with the lower of these and the connection's.
    #[serde(default)]
    pub limits: AskedLimits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Defaults of the plugin's own settings (contract 0.2.0's `setting`); the node's
    /// operator overrides them per connection side.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// The limits a plugin asks for; unset ones are the connection's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AskedLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<usize>,
}

impl AskedLimits {
    /// The connection's limits, lowered to what the plugin asks for.
    pub fn within(&self, connection: &Limits) -> Limits {
        let mut limits = connection.clone();
        if let Some(fuel) = self.fuel {
            limits.fuel = limits.fuel.min(fuel);
        }
        if let Some(ms) = self.timeout_ms {
            limits.timeout_ms = limits.timeout_ms.min(ms);
        }
        if let Some(bytes) = self.memory_bytes {
            limits.memory_bytes = limits.memory_bytes.min(bytes);
        }
        limits
    }

    /// What the plugin asks for above what `connection` allows, one line each.
    pub fn above(&self, connection: &Limits) -> Vec<String> {
        let mut above = Vec::new();
        let mut check = |what: &str, asked: Option<u64>, allowed: u64| {
            if let Some(asked) = asked.filter(|a| *a > allowed) {
                above.push(format!("{what} {asked} (the connection allows {allowed})"));
            }
        };
        check("fuel", self.fuel, connection.fuel);
        check("timeout-ms", self.timeout_ms, connection.timeout_ms);
        check(
            "memory-bytes",
            self.memory_bytes.map(|b| b as u64),
            connection.memory_bytes as u64,
        );
        above
    }
}

impl Manifest {
    /// Parse a `plugin.toml` and check it.
    pub fn from_toml(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Every field well formed: name, semantic version, contract version, worlds.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.name.starts_with('-');
        if !name_ok {
            return Err(format!(
                "name `{}`: use 1 to 64 lower-case letters, digits and `-`",
                self.name
            ));
        }
        if self.vendor.trim().is_empty() {
            return Err("vendor is empty".into());
        }
        Version::parse(&self.version).map_err(|e| format!("version `{}`: {e}", self.version))?;
        Version::parse(&self.contract).map_err(|e| format!("contract `{}`: {e}", self.contract))?;
        if self.worlds.is_empty() {
            return Err(
                "worlds is empty: name `incoming-processor` and/or `outgoing-processor`".into(),
            );
        }
        for world in &self.worlds {
            if world != "incoming-processor" && world != "outgoing-processor" {
                return Err(format!(
                    "world `{world}`: a plugin implements `incoming-processor` and/or `outgoing-processor`"
                ));
            }
        }
        Ok(())
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "package: {} by {}", self.id(), self.vendor)?;
        if !self.description.is_empty() {
            writeln!(f, "  {}", self.description)?;
        }
        writeln!(f, "  contract: twinsync:processor@{}", self.contract)?;
        writeln!(f, "  worlds: {}", self.worlds.join(", "))?;
        let l = &self.limits;
        if l != &AskedLimits::default() {
            let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            writeln!(
                f,
                "  asks for: fuel {}, timeout-ms {}, memory-bytes {}",
                show(l.fuel),
                show(l.timeout_ms),
                show(l.memory_bytes.map(|b| b as u64))
            )?;
        }
        if let Some(homepage) = &self.homepage {
            writeln!(f, "  homepage: {homepage}")?;
        }
        for (name, value) in &self.settings {
            writeln!(f, "  setting {name} = {value:?}")?;
        }
        Ok(())
    }
}

/// A semantic version: `MAJOR.MINOR.PATCH`, an optional `-PRE` and `+BUILD` (ignored when
/// comparing, as semver says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, String> {
        let core = text.split('+').next().unwrap_or_default();
        let (core, pre) = match core.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_string())),
            Some(_) => return Err("empty pre-release".into()),
            None => (core, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let number = |s: &str| -> Result<u64, String> {
            if s.is_empty()
                || !s.bytes().all(|b| b.is_ascii_digit())
                || (s.len() > 1 && s.starts_with('0'))
            {
                return Err("expected MAJOR.MINOR.PATCH, for example 1.0.0".into());
            }
            s.parse().map_err(|_| "a number is too large".to_string())
        };
        match parts.as_slice() {
            [major, minor, patch] => Ok(Version {
                major: number(major)?,
                minor: number(minor)?,
                patch: number(patch)?,
                pre,
            }),
            _ => Err("expected MAJOR.MINOR.PATCH, for example 1.0.0".into()),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            // A pre-release comes before its release.
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

/// The manifest inside `wasm`, if it has one. An unreadable or invalid one is an error:
/// a package that says something wrong about itself is not installed.
pub fn read(wasm: &[u8]) -> Result<Option<Manifest>, String> {
    let mut found = None;
    for section in sections(wasm)? {
        if section.name != Some(SECTION) {
            continue;
        }
        if found.is_some() {
            return Err(format!("it has two `{SECTION}` sections"));
        }
        let payload = &wasm[section.payload.clone()];
        if payload.len() > MAX_BYTES {
            return Err(format!(
                "its manifest is {} bytes, the most is {MAX_BYTES}",
                payload.len()
            ));
        }
        let manifest: Manifest = serde_json::from_slice(payload)
            .map_err(|e| format!("its manifest is not readable: {e}"))?;
        manifest
            .validate()
            .map_err(|e| format!("its manifest is wrong: {e}"))?;
        found = Some(manifest);
    }
    Ok(found)
}

/// `wasm` with `manifest` in its custom section (replacing any manifest it had).
pub fn pack(wasm: &[u8], manifest: &Manifest) -> Result<Vec<u8>, String> {
    manifest.validate()?;
    let payload = serde_json::to_vec(manifest).map_err(|e| e.to_string())?;
    if payload.len() > MAX_BYTES {
        return Err(format!(
            "the manifest is {} bytes, the most is {MAX_BYTES}",
            payload.len()
        ));
    }
    let mut out = Vec::with_capacity(wasm.len() + payload.len() + 32);
    out.extend_from_slice(&wasm[..8.min(wasm.len())]);
    for section in sections(wasm)? {
        if section.name != Some(SECTION) {
            out.extend_from_slice(&wasm[section.whole]);
        }
    }
    let mut content = Vec::with_capacity(payload.len() + SECTION.len() + 5);
    leb128(&mut content, SECTION.len() as u64);
    content.extend_from_slice(SECTION.as_bytes());
    content.extend_from_slice(&payload);
    out.push(0);
    leb128(&mut out, content.len() as u64);
    out.extend_from_slice(&content);
    Ok(out)
}

/// One top-level section: its bytes, its payload, and its name if it is a custom section.
struct Section<'a> {
    whole: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
    name: Option<&'a str>,
}

fn sections(wasm: &[u8]) -> Result<Vec<Section<'_>>, String> {
    if wasm.len() < 8 || !wasm.starts_with(b"\0asm") {
        return Err("it is not a WebAssembly file".into());
    }
    let mut sections = Vec::new();
    let mut pos = 8;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = read_leb128(wasm, &mut pos)? as usize;
        let end = pos
            .checked_add(size)
            .filter(|end| *end <= wasm.len())
            .ok_or_else(|| format!("a section at byte {start} runs past the end of the file"))?;
        let mut name = None;
        let mut payload = pos..end;
        if id == 0 {
            let mut at = pos;
            let length = read_leb128(&wasm[..end], &mut at)? as usize;
            let name_end = at
                .checked_add(length)
                .filter(|e| *e <= end)
                .ok_or_else(|| format!("the custom section at byte {start} has a bad name"))?;
            name = std::str::from_utf8(&wasm[at..name_end]).ok();
            payload = name_end..end;
        }
        sections.push(Section {
            whole: start..end,
            payload,
            name,
        });
        pos = end;
    }
    Ok(sections)
}

fn read_leb128(bytes: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes
            .get(*pos)
            .ok_or_else(|| "a section size runs past the end of the file".to_string())?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a section size is not a valid 32-bit LEB128 number".into())
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str) -> Manifest {
        Manifest {
            name: "tag-origin".into(),
            vendor: "Example Ltd".into(),
            version: version.into(),
            description: "labels issues with their origin".into(),
            contract: "0.1.0".into(),
            worlds: vec!["incoming-processor".into()],
            limits: AskedLimits {
                fuel: Some(1_000),
                ..AskedLimits::default()
            },
            homepage: None,
            settings: BTreeMap::new(),
        }
    }

    #[test]
    fn a_packed_manifest_reads_back_and_repacking_replaces_it() {
        let wasm = crate::builtin::MIRROR;
        assert_eq!(read(wasm), Ok(None));
        let packed = pack(wasm, &manifest("1.0.0")).unwrap();
        assert_eq!(read(&packed), Ok(Some(manifest("1.0.0"))));
        let again = pack(&packed, &manifest("1.1.0")).unwrap();
        assert_eq!(read(&again), Ok(Some(manifest("1.1.0"))));
        assert_eq!(again.len(), packed.len());
        // Everything else is unchanged: the original is a prefix.
        assert_eq!(&packed[..wasm.len()], wasm);
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_panic() {
        let packed = pack(crate::builtin::MIRROR, &manifest("1.0.0")).unwrap();
        for cut in [9, 100, packed.len() - 3] {
            assert!(read(&packed[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn versions_compare_as_semver_says() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.10.0") > v("1.9.3"));
        assert!(v("2.0.0-rc.1") < v("2.0.0"));
        assert_eq!(v("1.0.0+build.5"), v("1.0.0"));
        for bad in ["1.0", "01.0.0", "1.0.0-", "a.b.c", ""] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let mut m = manifest("1.0");
        assert!(m.validate().unwrap_err().contains("version"));
        m.version = "1.0.0".into();
        m.name = "Tag Origin".into();
        assert!(m.validate().unwrap_err().contains("name"));
        m.name = "tag-origin".into();
        m.worlds = vec!["processor".into()];
        assert!(m.validate().unwrap_err().contains("world"));
    }

    #[test]
    fn asked_limits_only_lower_the_connections() {
        let asked = AskedLimits {
            fuel: Some(10),
            timeout_ms: Some(1_000_000),
            memory_bytes: None,
        };
        let limits = asked.within(&Limits::default());
        assert_eq!(limits.fuel, 10);
        assert_eq!(limits.timeout_ms, Limits::default().timeout_ms);
        assert_eq!(asked.above(&Limits::default()).len(), 1);
    }
}

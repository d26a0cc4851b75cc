//! Fixed data the profiles refer to: Windows time-zone ids and GeoIds
//! (shipped as data files in `data/`), the visual-effect keys with their
//! registry values (and which keys alias the same value), desktop-icon
//! CLSIDs and Start-menu folders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const TIME_ZONES: &str = include_str!("data/windows_time_zones.tsv");
const GEO_IDS: &str = include_str!("data/geo_ids.tsv");

fn rows(text: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
}

/// Every Windows time-zone id, in the file's order.
pub fn time_zones() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| rows(TIME_ZONES).map(|(id, _)| id).collect())
}

pub fn is_time_zone(id: &str) -> bool {
    static SET: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| time_zones().iter().copied().collect())
        .contains(id)
}

/// Every GeoId with its name.
pub fn geo_ids() -> &'static BTreeMap<u32, &'static str> {
    static MAP: OnceLock<BTreeMap<u32, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        rows(GEO_IDS)
            .filter_map(|(id, name)| Some((id.parse().ok()?, name)))
            .collect()
    })
}

pub fn is_geo_id(id: u32) -> bool {
    geo_ids().contains_key(&id)
}

/// How a registry value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegType {
    Dword,
    Sz,
}

impl RegType {
    pub fn as_str(self) -> &'static str {
        match self {
            RegType::Dword => "REG_DWORD",
            RegType::Sz => "REG_SZ",
        }
    }
}

const ADVANCED: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\Advanced";
const DESKTOP: &str = r"HKCU\Control Panel\Desktop";
const DWM: &str = r"HKCU\Software\Microsoft\Windows\DWM";

/// One registry value a visual effect sets.
#[derive(Debug, Clone, Copy)]
pub struct EffectValue {
    /// The canonical key (the one whose setting wins).
    pub key: &'static str,
    /// Further keys that set the same registry value, in the order that
    /// decides between them when the canonical key is not set.
    pub aliases: &'static [&'static str],
    pub path: &'static str,
    pub name: &'static str,
    pub kind: RegType,
    pub on: &'static str,
    pub off: &'static str,
}

/// The visual effects, one entry per registry value (§5.2 of the
/// inventory). Aliased keys write the canonical key's value.
pub const EFFECTS: &[EffectValue] = &[
    EffectValue {
        key: "animateControls",
        aliases: &["animateMinMax"],
        path: r"HKCU\Control Panel\Desktop\WindowMetrics",
        name: "MinAnimate",
        kind: RegType::Sz,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "animateTaskbar",
        aliases: &[],
        path: ADVANCED,
        name: "TaskbarAnimations",
        kind: RegType::Dword,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "aeropeek",
        aliases: &["peekDesktop"],
        path: DWM,
        name: "EnableAeroPeek",
        kind: RegType::Dword,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "fontSmoothing",
        aliases: &[],
        path: DESKTOP,
        name: "FontSmoothing",
        kind: RegType::Sz,
        on: "2",
        off: "0",
    },
    EffectValue {
        key: "dragFullWindows",
        aliases: &[],
        path: DESKTOP,
        name: "DragFullWindows",
        kind: RegType::Sz,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "listBoxSmoothScrolling",
        aliases: &[],
        path: DESKTOP,
        name: "SmoothScroll",
        kind: RegType::Dword,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "cursorShadow",
        aliases: &["iconShadow"],
        path: ADVANCED,
        name: "ListviewShadow",
        kind: RegType::Dword,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "thumbnailPreviews",
        aliases: &[],
        path: ADVANCED,
        name: "IconsOnly",
        kind: RegType::Dword,
        on: "0",
        off: "1",
    },
    EffectValue {
        key: "translucent",
        aliases: &[],
        path: ADVANCED,
        name: "ListviewAlphaSelect",
        kind: RegType::Dword,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "saveThumbnails",
        aliases: &[],
        path: ADVANCED,
        name: "DisableThumbnailCache",
        kind: RegType::Dword,
        on: "0",
        off: "1",
    },
    EffectValue {
        key: "windowShadow",
        aliases: &[],
        path: DWM,
        name: "Composition",
        kind: RegType::Dword,
        on: "1",
        off: "0",
    },
    EffectValue {
        key: "fadeMenuItems",
        aliases: &["fadeTooltips", "fadeAfterClick", "comboBoxSlide"],
        path: DESKTOP,
        name: "MenuShowDelay",
        kind: RegType::Sz,
        on: "400",
        off: "0",
    },
];

/// Desktop icons: (config key, CLSID).
pub const DESKTOP_ICONS: &[(&str, &str)] = &[
    ("thisPC", "{20D04FE0-3AEA-1069-A2D8-08002B30309D}"),
    ("recycleBin", "{645FF040-5081-101B-9F08-00AA002F954E}"),
    ("userFiles", "{59031a47-3f72-44a7-89c5-5595fe6b30ee}"),
    ("controlPanel", "{5399E694-6CE5-4D6C-8FCE-1D8870FDCBA0}"),
    ("network", "{F02C1A0D-BE21-4350-88B0-7367FC96EF3C}"),
];

/// Start-menu folders: (config key, registry value name).
pub const START_FOLDERS: &[(&str, &str)] = &[
    ("documents", "Start_ShowDocuments"),
    ("downloads", "Start_ShowDownloads"),
    ("music", "Start_ShowMusic"),
    ("pictures", "Start_ShowPictures"),
    ("videos", "Start_ShowVideos"),
    ("personalFolder", "Start_ShowPersonalFolder"),
    ("settings", "Start_ShowSettings"),
    ("fileExplorer", "Start_ShowFileExplorer"),
    ("network", "Start_ShowNetwork"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_parse() {
        assert!(time_zones().len() >= 139, "{}", time_zones().len());
        assert!(is_time_zone("Turkey Standard Time"));
        assert!(is_time_zone("UTC"));
        assert!(!is_time_zone("Europe/Istanbul"));
        assert!(geo_ids().len() >= 290);
        assert_eq!(geo_ids().get(&235), Some(&"Turkey"));
        assert_eq!(geo_ids().get(&244), Some(&"United States"));
        assert!(!is_geo_id(1));
    }

    #[test]
    fn effect_keys_are_unique_and_each_value_is_listed_once() {
        let mut keys = BTreeSet::new();
        let mut values = BTreeSet::new();
        for e in EFFECTS {
            for k in std::iter::once(&e.key).chain(e.aliases) {
                assert!(keys.insert(*k), "{k} twice");
            }
            assert!(values.insert((e.path, e.name)), "{} twice", e.name);
        }
        assert_eq!(keys.len(), 18);
    }
}

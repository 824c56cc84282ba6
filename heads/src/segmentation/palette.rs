//! Class names and colours for segmentation outputs: ADE20K's 150 classes and palette and PASCAL VOC's
//! 21 (both as mmsegmentation lists them), a user's own labels file, and the PASCAL bit-interleaved
//! colour map for any other number of classes.
//!
//! A labels file is UTF-8 text with one class per line, in label order (line `i` names label `i`).
//! A line may end with a colour `#RRGGBB`; classes without one get the PASCAL colour of their index.
//! Blank lines are skipped.

use std::path::Path;

use crate::{Error, Result};

/// ADE20K's 150 class names, in label order (mmsegmentation's `ADE20KDataset`).
pub const ADE20K_CLASSES: [&str; 150] = [
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
];

/// ADE20K's 150 colours, in label order (mmsegmentation's `ADE20KDataset` palette).
pub const ADE20K_PALETTE: [[u8; 3]; 150] = [
    [120, 120, 120],
    [180, 120, 120],
    [6, 230, 230],
    [80, 50, 50],
    [4, 200, 3],
    [120, 120, 80],
    [140, 140, 140],
    [204, 5, 255],
    [230, 230, 230],
    [4, 250, 7],
    [224, 5, 255],
    [235, 255, 7],
    [150, 5, 61],
    [120, 120, 70],
    [8, 255, 51],
    [255, 6, 82],
    [143, 255, 140],
    [204, 255, 4],
    [255, 51, 7],
    [204, 70, 3],
    [0, 102, 200],
    [61, 230, 250],
    [255, 6, 51],
    [11, 102, 255],
    [255, 7, 71],
    [255, 9, 224],
    [9, 7, 230],
    [220, 220, 220],
    [255, 9, 92],
    [112, 9, 255],
    [8, 255, 214],
    [7, 255, 224],
    [255, 184, 6],
    [10, 255, 71],
    [255, 41, 10],
    [7, 255, 255],
    [224, 255, 8],
    [102, 8, 255],
    [255, 61, 6],
    [255, 194, 7],
    [255, 122, 8],
    [0, 255, 20],
    [255, 8, 41],
    [255, 5, 153],
    [6, 51, 255],
    [235, 12, 255],
    [160, 150, 20],
    [0, 163, 255],
    [140, 140, 140],
    [250, 10, 15],
    [20, 255, 0],
    [31, 255, 0],
    [255, 31, 0],
    [255, 224, 0],
    [153, 255, 0],
    [0, 0, 255],
    [255, 71, 0],
    [0, 235, 255],
    [0, 173, 255],
    [31, 0, 255],
    [11, 200, 200],
    [255, 82, 0],
    [0, 255, 245],
    [0, 61, 255],
    [0, 255, 112],
    [0, 255, 133],
    [255, 0, 0],
    [255, 163, 0],
    [255, 102, 0],
    [194, 255, 0],
    [0, 143, 255],
    [51, 255, 0],
    [0, 82, 255],
    [0, 255, 41],
    [0, 255, 173],
    [10, 0, 255],
    [173, 255, 0],
    [0, 255, 153],
    [255, 92, 0],
    [255, 0, 255],
    [255, 0, 245],
    [255, 0, 102],
    [255, 173, 0],
    [255, 0, 20],
    [255, 184, 184],
    [0, 31, 255],
    [0, 255, 61],
    [0, 71, 255],
    [255, 0, 204],
    [0, 255, 194],
    [0, 255, 82],
    [0, 10, 255],
    [0, 112, 255],
    [51, 0, 255],
    [0, 194, 255],
    [0, 122, 255],
    [0, 255, 163],
    [255, 153, 0],
    [0, 255, 10],
    [255, 112, 0],
    [143, 255, 0],
    [82, 0, 255],
    [163, 255, 0],
    [255, 235, 0],
    [8, 184, 170],
    [133, 0, 255],
    [0, 255, 92],
    [184, 0, 255],
    [255, 0, 31],
    [0, 184, 255],
    [0, 214, 255],
    [255, 0, 112],
    [92, 255, 0],
    [0, 224, 255],
    [112, 224, 255],
    [70, 184, 160],
    [163, 0, 255],
    [153, 0, 255],
    [71, 255, 0],
    [255, 0, 163],
    [255, 204, 0],
    [255, 0, 143],
    [0, 255, 235],
    [133, 255, 0],
    [255, 0, 235],
    [245, 0, 255],
    [255, 0, 122],
    [255, 245, 0],
    [10, 190, 212],
    [214, 255, 0],
    [0, 204, 255],
    [20, 0, 255],
    [255, 255, 0],
    [0, 153, 255],
    [0, 41, 255],
    [0, 255, 204],
    [41, 0, 255],
    [41, 255, 0],
    [173, 0, 255],
    [0, 245, 255],
    [71, 0, 255],
    [122, 0, 255],
    [0, 255, 184],
    [0, 92, 255],
    [184, 255, 0],
    [0, 133, 255],
    [255, 214, 0],
    [25, 194, 194],
    [102, 255, 0],
    [92, 0, 255],
];

/// PASCAL VOC 2012's 21 class names, in label order (background is 0).
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The PASCAL VOC colour map (`bitget` interleaving of the label's bits): 0 is black, 1 is
/// `[128, 0, 0]`, 2 `[0, 128, 0]`, ...; its first 21 entries are VOC's palette.
pub fn pascal_colormap(n: usize) -> Vec<[u8; 3]> {
    (0..n)
        .map(|i| {
            let mut rgb = [0u8; 3];
            let mut c = i;
            for shift in (0..8).rev() {
                for (ch, v) in rgb.iter_mut().enumerate() {
                    *v |= (((c >> ch) & 1) as u8) << shift;
                }
                c >>= 3;
            }
            rgb
        })
        .collect()
}

/// The names and colours of a segmentation head's classes, label `i` at index `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSet {
    names: Vec<String>,
    colors: Vec<[u8; 3]>,
}

impl ClassSet {
    /// Classes from names and one colour per name.
    pub fn new(names: Vec<String>, colors: Vec<[u8; 3]>) -> Result<Self> {
        if names.is_empty() {
            return Err(Error::input("classes", "no class was given"));
        }
        if names.len() != colors.len() {
            return Err(Error::input(
                "classes",
                format!("{} names but {} colours", names.len(), colors.len()),
            ));
        }
        Ok(Self { names, colors })
    }

    /// Classes from names, coloured with [`pascal_colormap`].
    pub fn from_names(names: Vec<String>) -> Result<Self> {
        let colors = pascal_colormap(names.len());
        Self::new(names, colors)
    }

    /// ADE20K's 150 classes (mmsegmentation's names and palette; labels are the dataset's 1..150
    /// shifted down by one, as `reduce_zero_label` does).
    pub fn ade20k() -> Self {
        Self {
            names: ADE20K_CLASSES.iter().map(|s| s.to_string()).collect(),
            colors: ADE20K_PALETTE.to_vec(),
        }
    }

    /// PASCAL VOC 2012's 21 classes (background first) with the VOC colour map.
    pub fn voc() -> Self {
        Self {
            names: VOC_CLASSES.iter().map(|s| s.to_string()).collect(),
            colors: pascal_colormap(VOC_CLASSES.len()),
        }
    }

    /// The built-in set for a head with `num_classes` outputs: ADE20K for 150, VOC for 21, otherwise
    /// `class 0`, `class 1`, ... with the PASCAL colour map.
    pub fn for_num_classes(num_classes: usize) -> Self {
        match num_classes {
            150 => Self::ade20k(),
            21 => Self::voc(),
            n => Self {
                names: (0..n).map(|i| format!("class {i}")).collect(),
                colors: pascal_colormap(n),
            },
        }
    }

    /// Reads a labels file (see the module documentation for its format).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::InvalidInput { reason, .. } => Error::input(path.display().to_string(), reason),
            other => other,
        })
    }

    /// Parses the text of a labels file.
    pub fn parse(text: &str) -> Result<Self> {
        let fallback = |i: usize| pascal_colormap(i + 1)[i];
        let mut names = Vec::new();
        let mut colors = Vec::new();
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, color) = match line.rsplit_once(char::is_whitespace) {
                Some((name, last)) if last.starts_with('#') => (
                    name.trim(),
                    parse_hex(last).ok_or_else(|| {
                        Error::input(
                            "labels file",
                            format!(
                                "line {}: colour {last:?} is not of the form #RRGGBB",
                                lineno + 1
                            ),
                        )
                    })?,
                ),
                _ => (line, fallback(names.len())),
            };
            names.push(name.to_string());
            colors.push(color);
        }
        Self::new(names, colors)
    }

    /// The number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is no class (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The class names, label order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The colours, label order.
    pub fn colors(&self) -> &[[u8; 3]] {
        &self.colors
    }

    /// The name of `label` (`"label N"` past the end).
    pub fn name(&self, label: usize) -> String {
        self.names
            .get(label)
            .cloned()
            .unwrap_or_else(|| format!("label {label}"))
    }

    /// The colour of `label` (black past the end).
    pub fn color(&self, label: usize) -> [u8; 3] {
        self.colors.get(label).copied().unwrap_or([0, 0, 0])
    }

    /// Checks that the set names exactly `num_classes` classes, the number a head predicts.
    pub fn check_len(&self, num_classes: usize) -> Result<()> {
        if self.len() != num_classes {
            return Err(Error::input(
                "classes",
                format!(
                    "{} class names were given but the head predicts {num_classes} classes",
                    self.len()
                ),
            ));
        }
        Ok(())
    }
}

fn parse_hex(token: &str) -> Option<[u8; 3]> {
    let hex = token.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

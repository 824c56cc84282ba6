//! Ground truth for CorLoc: a VOC-style folder or a COCO-style JSON file, listed as one [`GtItem`]
//! (image path and boxes `[x1, y1, x2, y2]`) per image, as LOST's `datasets.py` reads them.
//!
//! - VOC (`extract_gt_VOC`): `Annotations/*.xml` and `JPEGImages/`; each object's `bndbox` becomes
//!   `[xmin − 1, ymin − 1, xmax, ymax]` (VOC is 1-based and inclusive). All objects count, difficult and
//!   truncated ones included, unless [`VocOptions::remove_hard`] (LOST's `--no_hard`).
//! - COCO (`extract_gt_COCO`): `bbox` `[x, y, w, h]` becomes `[x, y, x + w, y + h]` rounded to integers
//!   with Python's `round` (half to even); `iscrowd` objects are removed. Images come in increasing id
//!   order, as torchvision's `CocoDetection` lists them.
//!
//! A missing folder or an unreadable COCO file is an error; a bad annotation or a missing image only
//! drops that item, and is reported in [`Listing::errors`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One image and its ground-truth boxes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GtItem {
    /// The image's name: the VOC annotation id or the COCO `file_name`.
    pub name: String,
    /// The image file.
    pub image: PathBuf,
    /// Ground-truth boxes `[x1, y1, x2, y2]` in pixels.
    pub boxes: Vec<[f32; 4]>,
}

/// An item that could not be listed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// The annotation file or image concerned.
    pub item: String,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.reason)
    }
}

/// The result of listing a dataset: the good items, the per-item errors, and the items left out on
/// purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Listing {
    /// The items to evaluate, in dataset order.
    pub items: Vec<GtItem>,
    /// Items dropped because their annotation or image is bad.
    pub errors: Vec<ItemError>,
    /// Items left out on purpose: VOC images whose objects are all hard when
    /// [`VocOptions::remove_hard`] is set (LOST does not count them).
    pub skipped: Vec<String>,
}

/// How a VOC folder is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VocOptions {
    /// An image set, read from `ImageSets/Main/<name>.txt` (one id a line), such as `trainval`; by
    /// default every `Annotations/*.xml`, sorted by name.
    pub image_set: Option<String>,
    /// Drop difficult and truncated objects, and skip the images left without objects (LOST's
    /// `--no_hard`). Default: keep them.
    pub remove_hard: bool,
}

impl VocOptions {
    /// Sets [`VocOptions::image_set`].
    pub fn with_image_set(mut self, image_set: impl Into<String>) -> Self {
        self.image_set = Some(image_set.into());
        self
    }

    /// Sets [`VocOptions::remove_hard`].
    pub fn with_remove_hard(mut self, remove_hard: bool) -> Self {
        self.remove_hard = remove_hard;
        self
    }
}

/// One object of a VOC annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct VocObject {
    /// The class name.
    pub name: String,
    /// `<truncated>1</truncated>`.
    pub truncated: bool,
    /// `<difficult>1</difficult>`.
    pub difficult: bool,
    /// The box `[xmin − 1, ymin − 1, xmax, ymax]`.
    pub bbox: [f32; 4],
}

/// A parsed VOC annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct VocAnnotation {
    /// The `<filename>` element, when present.
    pub filename: Option<String>,
    /// The `<object>` elements, in file order.
    pub objects: Vec<VocObject>,
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(tag))
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
    child(node, tag).and_then(|c| c.text()).map(str::trim)
}

/// Parses the text of a VOC annotation file; `name` (the file) is used in error messages. Coordinates
/// may be integers (VOC) or decimals.
pub fn parse_voc_annotation(xml: &str, name: &str) -> Result<VocAnnotation> {
    let doc = roxmltree::Document::parse(xml)
        .map_err(|e| Error::input(name, format!("is not valid XML: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("annotation") {
        return Err(Error::input(
            name,
            format!(
                "has root element <{}>, expected <annotation>",
                root.tag_name().name()
            ),
        ));
    }
    let mut objects = Vec::new();
    for (i, object) in root
        .children()
        .filter(|c| c.has_tag_name("object"))
        .enumerate()
    {
        let bndbox = child(object, "bndbox")
            .ok_or_else(|| Error::input(name, format!("object {} has no <bndbox>", i + 1)))?;
        let mut coords = [0f32; 4];
        for (value, tag) in coords.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            let text = child_text(bndbox, tag).unwrap_or("");
            *value = text.parse().map_err(|_| {
                Error::input(
                    name,
                    format!("object {}: <{tag}> `{text}` is not a number", i + 1),
                )
            })?;
        }
        objects.push(VocObject {
            name: child_text(object, "name").unwrap_or("").to_string(),
            truncated: child_text(object, "truncated") == Some("1"),
            difficult: child_text(object, "difficult") == Some("1"),
            bbox: [coords[0] - 1.0, coords[1] - 1.0, coords[2], coords[3]],
        });
    }
    Ok(VocAnnotation {
        filename: child_text(root, "filename").map(str::to_string),
        objects,
    })
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The annotation ids of a VOC folder: the image set's lines, or every `Annotations/*.xml` by name.
fn voc_ids(root: &Path, options: &VocOptions) -> Result<Vec<String>> {
    if let Some(set) = &options.image_set {
        let path = root
            .join("ImageSets")
            .join("Main")
            .join(format!("{set}.txt"));
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        return Ok(text.split_whitespace().map(str::to_string).collect());
    }
    let dir = root.join("Annotations");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
        let path = entry.map_err(|e| io_error(&dir, e))?.path();
        if path.extension().is_some_and(|e| e == "xml") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                ids.push(stem.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// One VOC item, or why it cannot be used. `Ok(None)`: skipped (all objects hard, `remove_hard`).
fn voc_item(root: &Path, id: &str, options: &VocOptions) -> Result<Option<GtItem>> {
    let path = root.join("Annotations").join(format!("{id}.xml"));
    let xml = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    let annotation = parse_voc_annotation(&xml, &path.display().to_string())?;
    let file = annotation.filename.unwrap_or_else(|| format!("{id}.jpg"));
    let image = root.join("JPEGImages").join(file);
    if !image.is_file() {
        return Err(Error::input(
            path.display().to_string(),
            format!("its image {} does not exist", image.display()),
        ));
    }
    let boxes: Vec<[f32; 4]> = annotation
        .objects
        .iter()
        .filter(|o| !(options.remove_hard && (o.truncated || o.difficult)))
        .map(|o| o.bbox)
        .collect();
    if boxes.is_empty() && options.remove_hard {
        return Ok(None);
    }
    Ok(Some(GtItem {
        name: id.to_string(),
        image,
        boxes,
    }))
}

/// Lists a VOC-style folder (`root/Annotations/*.xml`, `root/JPEGImages/`). Errors when the folder or
/// the image set cannot be read; a bad annotation or a missing image is reported in
/// [`Listing::errors`] and the listing goes on.
pub fn list_voc(root: &Path, options: &VocOptions) -> Result<Listing> {
    let mut listing = Listing::default();
    for id in voc_ids(root, options)? {
        match voc_item(root, &id, options) {
            Ok(Some(item)) => listing.items.push(item),
            Ok(None) => listing.skipped.push(id),
            Err(e) => listing.errors.push(ItemError {
                item: id,
                reason: e.to_string(),
            }),
        }
    }
    Ok(listing)
}

/// How a COCO file is listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CocoOptions {
    /// A text file of image file names, one a line (directories ignored), such as LOST's
    /// `coco_20k_filenames.txt`: only those images are listed. Default: every image of the JSON.
    pub file_list: Option<PathBuf>,
}

impl CocoOptions {
    /// Sets [`CocoOptions::file_list`].
    pub fn with_file_list(mut self, file_list: impl Into<PathBuf>) -> Self {
        self.file_list = Some(file_list.into());
        self
    }
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    iscrowd: u8,
}

fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Lists the images of a COCO-style annotation file, found in `images`. Errors when the file cannot be
/// read or parsed; a missing image is reported in [`Listing::errors`]. An image whose objects are all
/// crowds is kept with no box (it counts as not found, as in LOST).
pub fn list_coco(annotations: &Path, images: &Path, options: &CocoOptions) -> Result<Listing> {
    let text = std::fs::read_to_string(annotations).map_err(|e| io_error(annotations, e))?;
    let coco: CocoFile = serde_json::from_str(&text).map_err(|e| {
        Error::input(
            annotations.display().to_string(),
            format!("is not a COCO annotation file: {e}"),
        )
    })?;
    let mut boxes: HashMap<u64, Vec<[f32; 4]>> = HashMap::new();
    for a in coco.annotations.iter().filter(|a| a.iscrowd != 1) {
        let [x, y, w, h] = a.bbox;
        let b = [x, y, x + w, y + h].map(|v| v.round_ties_even() as f32);
        boxes.entry(a.image_id).or_default().push(b);
    }
    let mut listing = Listing::default();
    let mut selected: Vec<&CocoImage> = coco.images.iter().collect();
    if let Some(list) = &options.file_list {
        let text = std::fs::read_to_string(list).map_err(|e| io_error(list, e))?;
        let wanted: HashSet<&str> = text.split_whitespace().map(base_name).collect();
        selected.retain(|im| wanted.contains(base_name(&im.file_name)));
        let present: HashSet<&str> = selected.iter().map(|im| base_name(&im.file_name)).collect();
        let mut absent: Vec<&str> = wanted.difference(&present).copied().collect();
        absent.sort_unstable();
        listing
            .errors
            .extend(absent.into_iter().map(|name| ItemError {
                item: name.to_string(),
                reason: format!(
                    "is listed in {} but not in {}",
                    list.display(),
                    annotations.display()
                ),
            }));
    }
    selected.sort_by_key(|im| im.id);
    for im in selected {
        let image = images.join(&im.file_name);
        if !image.is_file() {
            listing.errors.push(ItemError {
                item: im.file_name.clone(),
                reason: format!("image {} does not exist", image.display()),
            });
            continue;
        }
        listing.items.push(GtItem {
            name: im.file_name.clone(),
            image,
            boxes: boxes.remove(&im.id).unwrap_or_default(),
        });
    }
    Ok(listing)
}

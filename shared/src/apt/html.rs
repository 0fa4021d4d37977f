//! `index.html` at the repository root: what the repository is and how to use
//! it, generated from the same settings as the repository itself.

use crate::config::RepositoryConfig;

/// Escape text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A package line in the table: name, newest version, architectures, summary.
pub struct Listed {
    pub name: String,
    pub version: String,
    pub architectures: String,
    pub summary: String,
}

pub fn render_index_html(repo: &RepositoryConfig, fingerprint: &str, packages: &[Listed], updated: &str) -> String {
    let base = repo.base_url.trim_end_matches('/');
    let keyring = &repo.keyring_name;
    let suite = &repo.suite;
    let components = repo.components.join(" ");
    let list = &repo.source_list_name;
    let source_line = format!("deb [signed-by=/usr/share/keyrings/{keyring}] {base} {suite} {components}");
    let main_pkgs: Vec<&str> =
        packages.iter().map(|p| p.name.as_str()).filter(|n| Some(*n) != repo.convenience_copy.as_deref()).collect();
    let install = if main_pkgs.is_empty() { "<package>".to_owned() } else { main_pkgs.join(" ") };
    let quick = match &repo.convenience_copy {
        Some(cfg) => format!(
            "<h2>Quick install</h2>\n<p><strong>Step 1.</strong> Install <code>{cfg}</code>: it adds the source list and the \
archive key. It is itself a package of this repository, so APT keeps it (and with it the key and the source list) \
up to date from then on.</p>\n\
<pre><code>curl -fsSLO {base}/{cfg}.deb\nsudo apt install ./{cfg}.deb</code></pre>\n\
<p><strong>Step 2.</strong> Install the packages.</p>\n\
<pre><code>sudo apt update\nsudo apt install {install}</code></pre>\n",
            cfg = esc(cfg),
            base = esc(base),
            install = esc(&install),
        ),
        None => String::new(),
    };
    let rows: String = packages
        .iter()
        .map(|p| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&p.name),
                esc(&p.version),
                esc(&p.architectures),
                esc(&p.summary)
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{label} APT repository</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #1d1d1f; }}
pre {{ background: #f4f4f6; padding: .8rem 1rem; overflow-x: auto; border-radius: 6px; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }}
</style>
</head>
<body>
<h1>{label} APT repository</h1>
<p>{description}. Suite <code>{suite}</code>, components <code>{components}</code>, architectures <code>{archs}</code>.</p>
{quick}<h2>Manual install</h2>
<p>Put the archive key where APT looks for it, add the source list with a <code>signed-by</code> line, then install.</p>
<pre><code>sudo install -d -m 0755 /usr/share/keyrings
curl -fsSL {base}/{keyring} \
  | sudo tee /usr/share/keyrings/{keyring} &gt; /dev/null
echo "{source_line}" \
  | sudo tee /etc/apt/sources.list.d/{list}
sudo apt update
sudo apt install {install}</code></pre>
<p>Archive key fingerprint: <code>{fingerprint}</code></p>
<h2>Packages</h2>
<table>
<tr><th>Package</th><th>Newest version</th><th>Architectures</th><th>Summary</th></tr>
{rows}</table>
<p><small>Updated {updated}.</small></p>
</body>
</html>
"#,
        label = esc(&repo.label),
        description = esc(repo.description.trim_end_matches('.')),
        suite = esc(suite),
        components = esc(&components),
        archs = esc(&repo.architectures.join(" ")),
        quick = quick,
        base = esc(base),
        keyring = esc(keyring),
        source_line = esc(&source_line),
        list = esc(list),
        install = esc(&install),
        fingerprint = esc(fingerprint),
        rows = rows,
        updated = esc(updated),
    )
}

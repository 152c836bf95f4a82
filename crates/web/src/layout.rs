//! The page shell shared by every page: document head, the one stylesheet, site navigation, footer, and the
//! small script (copy buttons, code tabs, instant filtering) that every page works without.

use std::fmt::Write as _;

use crate::data::Site;
use crate::html::Esc;

/// Which top-level navigation entry the page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Models,
    Rankings,
    Other,
}

/// Wraps `main_html` (already-escaped markup) into a complete HTML document.
pub(crate) fn document(
    site: &Site,
    title: &str,
    description: &str,
    active: Nav,
    main_html: &str,
) -> String {
    let mut out = String::with_capacity(main_html.len() + STYLE.len() + SCRIPT.len() + 1500);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} | {}</title><meta name="description" content="{}"><meta name="color-scheme" content="light dark"><style>{STYLE}</style></head><body>"#,
        Esc(title),
        Esc(&site.name),
        Esc(description)
    );
    out.push_str(r##"<a class="skip" href="#main">Skip to content</a>"##);
    let _ = write!(
        out,
        r#"<header class="site-header"><nav aria-label="Main"><a class="brand" href="/models">{}</a><ul class="nav-links">"#,
        Esc(&site.name)
    );
    for (nav, href, label) in [
        (Nav::Models, "/models", "Models"),
        (Nav::Rankings, "/rankings", "Rankings"),
        (Nav::Other, "/api/v1/models", "API"),
    ] {
        let current = if nav == active && nav != Nav::Other {
            r#" aria-current="page""#
        } else {
            ""
        };
        let _ = write!(out, r#"<li><a href="{href}"{current}>{label}</a></li>"#);
    }
    out.push_str("</ul></nav></header>");
    let _ = write!(out, r#"<main id="main" tabindex="-1">{main_html}</main>"#);
    let _ = write!(
        out,
        r#"<footer class="site-footer"><p>{} — an open-source LLM router. Prices are USD per million tokens; times are UTC.</p></footer><script>{SCRIPT}</script></body></html>"#,
        Esc(&site.name)
    );
    out
}

/// One stylesheet for all pages; light by default, dark through `prefers-color-scheme`.
const STYLE: &str = r#"
:root{--bg:#f8fafc;--fg:#0f172a;--muted:#475569;--soft:#f1f5f9;--card:#fff;--border:#e2e8f0;--field:#64748b;--accent:#1d4ed8;--accent-soft:#dbeafe;--good:#16a34a;--degraded:#eab308;--poor:#dc2626;--none:#cbd5e1;--code-bg:#0f172a;--code-fg:#e2e8f0;--ref:#0f172a;--yes:#166534;--yes-bg:#dcfce7;--no:#991b1b;--no-bg:#fee2e2}
@media (prefers-color-scheme:dark){:root{--bg:#0b1120;--fg:#e2e8f0;--muted:#a3b1c6;--soft:#16213a;--card:#0f172a;--border:#26334d;--field:#7c8ba3;--accent:#93c5fd;--accent-soft:#1e3a5f;--good:#22c55e;--degraded:#facc15;--poor:#f87171;--none:#334155;--code-bg:#020617;--ref:#f8fafc;--yes:#bbf7d0;--yes-bg:#14532d;--no:#fecaca;--no-bg:#7f1d1d}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent);text-underline-offset:2px}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px;border-radius:4px}
main:focus{outline:none}
.skip{position:absolute;left:-9999px;top:8px;z-index:20;background:var(--fg);color:var(--bg);padding:8px 14px;border-radius:8px}
.skip:focus{left:8px}
.sr-only{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.site-header{background:var(--card);border-bottom:1px solid var(--border)}
.site-header nav{max-width:1160px;margin:0 auto;padding:10px 20px;display:flex;align-items:center;gap:16px;flex-wrap:wrap}
.brand{margin-right:auto;font-weight:750;font-size:18px;color:var(--fg);text-decoration:none;letter-spacing:-.01em}
.brand::before{content:"";display:inline-block;width:12px;height:12px;margin-right:8px;border-radius:3px;background:linear-gradient(135deg,#3b82f6,#009e73)}
.nav-links{display:flex;gap:4px;list-style:none;margin:0;padding:0}
.nav-links a{display:block;padding:6px 12px;border-radius:8px;color:var(--muted);text-decoration:none;font-weight:550}
.nav-links a:hover{background:var(--soft);color:var(--fg)}
.nav-links a[aria-current=page]{background:var(--accent-soft);color:var(--fg)}
main{display:block;max-width:1160px;margin:0 auto;padding:20px 20px 56px}
.site-footer{border-top:1px solid var(--border);color:var(--muted);font-size:13px;text-align:center;padding:20px}
h1{font-size:30px;line-height:1.2;margin:6px 0 10px;letter-spacing:-.015em;overflow-wrap:anywhere}
h2{font-size:20px;line-height:1.3;margin:0 0 4px;letter-spacing:-.01em}
h3{font-size:15px;margin:18px 0 8px}
p{margin:0 0 10px}
.muted,.lede{color:var(--muted)}
.lede{font-size:14px;margin:0 0 14px}
.crumbs{font-size:14px;color:var(--muted);margin:0}
.section{background:var(--card);border:1px solid var(--border);border-radius:14px;padding:20px 22px;margin:18px 0}
.section>h2+.lede{margin-top:2px}
.grid-2{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px 28px}
.stack>*+*{margin-top:16px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:13px}
.id-row{display:flex;align-items:center;gap:8px;flex-wrap:wrap;margin:0 0 12px}
.id-row code{background:var(--soft);border:1px solid var(--border);padding:3px 8px;border-radius:6px;overflow-wrap:anywhere}
button{font:inherit;font-size:13px;line-height:1.2;padding:6px 12px;border-radius:8px;border:1px solid var(--field);background:var(--card);color:var(--fg);cursor:pointer}
button:hover{background:var(--soft)}
.btn-primary{background:var(--accent);border-color:var(--accent);color:var(--card);font-weight:600}
.btn-primary:hover{background:var(--accent);filter:brightness(1.1)}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:14px 0}
.facts div{background:var(--soft);border-radius:10px;padding:10px 14px}
.facts dt{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.facts dd{margin:2px 0 0;font-size:17px;font-weight:650;font-variant-numeric:tabular-nums}
.desc{max-width:80ch}
.badges{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:8px 0;padding:0;list-style:none;font-size:13px}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;background:var(--soft);border:1px solid var(--border);color:var(--fg);font-size:12.5px;white-space:nowrap}
.badge.in{background:var(--accent-soft);border-color:transparent}
.badge.yes{background:var(--yes-bg);color:var(--yes);border-color:transparent}
.badge.no{background:var(--no-bg);color:var(--no);border-color:transparent}
.subnav{margin:14px 0 0}
.subnav ul{display:flex;gap:6px;overflow-x:auto;list-style:none;margin:0;padding:2px 2px 6px}
.subnav a{display:block;white-space:nowrap;padding:6px 13px;border-radius:999px;border:1px solid var(--border);background:var(--card);color:var(--fg);text-decoration:none;font-size:13.5px}
.subnav a:hover{border-color:var(--accent)}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--border);border-radius:10px;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:14px}
caption{text-align:left}
th,td{padding:9px 12px;text-align:left;border-bottom:1px solid var(--border);white-space:nowrap;vertical-align:middle}
thead th{background:var(--soft);color:var(--muted);font-size:12px;font-weight:650;text-transform:uppercase;letter-spacing:.04em}
tbody tr:last-child>*{border-bottom:0}
tbody tr:hover{background:var(--soft)}
tbody th{font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
tfoot td,tfoot th{border-top:2px solid var(--border);border-bottom:0;font-weight:650}
.tag{display:inline-flex;align-items:center;gap:4px}
.tag button{padding:2px 7px;font-size:12px}
.chart{margin:0}
.chart-svg{display:block;width:100%;height:auto;overflow:visible}
.chart-svg text{fill:var(--muted);font-size:12px;font-family:inherit}
.chart-svg.wide text{font-size:10.5px}
.chart-svg .axis-title{font-size:11.5px;font-weight:650}
.chart-svg .grid{stroke:var(--border)}
.chart-svg .axis{stroke:var(--field)}
.chart-svg .pt{stroke:var(--card);stroke-width:1}
.chart-svg .ref{stroke:var(--ref);stroke-width:3;stroke-linecap:round}
@media (max-width:600px){.chart-svg text,.chart-svg .axis-title{font-size:19px}.chart-svg.wide text,.chart-svg.wide .axis-title{font-size:28px}.chart-svg .minor{display:none}}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;list-style:none;margin:8px 0 0;padding:0;font-size:13px;color:var(--muted)}
.legend li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;flex:none;width:14px;height:10px;border-radius:3px;background:var(--c)}
.sw-line{height:3px;border-radius:2px}
.sw-dashed{height:0;background:none;border-top:3px dashed var(--c)}
.sw-marker{height:3px;background:var(--ref)}
.chart-empty{display:flex;flex-direction:column;align-items:center;justify-content:center;gap:2px;min-height:150px;padding:16px;border:1px dashed var(--field);border-radius:10px;background:var(--soft);color:var(--muted);text-align:center;font-size:14px}
.chart-empty strong{color:var(--fg);font-size:15px}
.uptime-row .chart-empty{min-height:28px;flex-direction:row;gap:8px;padding:4px 10px}
.status-svg{display:block;width:100%;height:28px}
.st-good{fill:var(--good);background:var(--good)}
.st-degraded{fill:var(--degraded);background:var(--degraded)}
.st-poor{fill:var(--poor);background:var(--poor)}
.st-none{fill:var(--none);background:var(--none)}
.status-svg rect:hover{opacity:.7}
.uptime-rows{list-style:none;margin:8px 0;padding:0}
.uptime-row{display:grid;grid-template-columns:minmax(120px,200px) minmax(0,1fr) 70px;gap:6px 14px;align-items:center;padding:6px 0;border-bottom:1px solid var(--border)}
.uptime-row:last-child{border-bottom:0}
.uptime-name{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.uptime-avg{text-align:right;font-variant-numeric:tabular-nums;font-weight:600}
.uptime-axis{display:flex;justify-content:space-between;color:var(--muted);font-size:12px;margin:2px 0 0}
.tabs [role=tablist]{display:none}
.js .tabs [role=tablist]{display:flex;gap:2px;overflow-x:auto;border-bottom:1px solid var(--border);margin:0 0 12px}
[role=tab]{border:0;border-bottom:2px solid transparent;border-radius:6px 6px 0 0;background:none;padding:9px 12px;color:var(--muted);white-space:nowrap;font-weight:550}
[role=tab][aria-selected=true]{color:var(--fg);border-bottom-color:var(--accent)}
.code-block+.code-block{margin-top:18px}
.js .tabs .code-block+.code-block{margin-top:0}
.code-head{display:flex;align-items:center;justify-content:space-between;gap:8px;margin:0 0 6px}
.code-head h3{margin:0}
.js .tabs .code-head h3{font-size:13px;color:var(--muted);font-weight:550}
pre{margin:0;padding:14px 16px;overflow-x:auto;border-radius:10px;background:var(--code-bg);color:var(--code-fg);line-height:1.5}
.index-layout{display:grid;grid-template-columns:260px minmax(0,1fr);gap:24px;align-items:start}
.filters{background:var(--card);border:1px solid var(--border);border-radius:14px;padding:16px;position:sticky;top:12px}
.filters h2{font-size:16px;margin:0 0 10px}
.field{display:flex;flex-direction:column;gap:4px;margin:0 0 12px}
.field label{font-size:13px;font-weight:600}
input,select{font:inherit;font-size:14px;width:100%;padding:7px 10px;border:1px solid var(--field);border-radius:8px;background:var(--card);color:var(--fg)}
.form-actions{display:flex;gap:10px;align-items:center}
.result-count{color:var(--muted);font-size:14px;margin:0 0 10px}
.model-list{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:12px}
.model-card{background:var(--card);border:1px solid var(--border);border-radius:14px;padding:16px 18px}
.model-card:hover{border-color:var(--accent)}
.model-card h3{font-size:17px;margin:0}
.model-card h3 a{color:var(--fg);text-decoration:none}
.model-card h3 a:hover{text-decoration:underline}
.model-card .mid{font-size:13px;color:var(--muted)}
.model-card .desc{color:var(--muted);font-size:14px;margin:6px 0 10px;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}
.stats{display:flex;flex-wrap:wrap;gap:4px 18px;list-style:none;margin:0;padding:0;font-size:13px;color:var(--muted)}
.stats strong{color:var(--fg);font-weight:650;font-variant-numeric:tabular-nums}
.segmented{display:inline-flex;border:1px solid var(--field);border-radius:10px;overflow:hidden;margin:4px 0 8px}
.segmented a{padding:7px 16px;text-decoration:none;color:var(--fg);font-size:14px}
.segmented a+a{border-left:1px solid var(--field)}
.segmented a[aria-current=page]{background:var(--accent);color:var(--card);font-weight:650}
.flags{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:10px;margin:10px 0 0;padding:0;list-style:none}
.flags li{display:flex;justify-content:space-between;align-items:center;gap:10px;background:var(--soft);border-radius:10px;padding:10px 14px}
.links{display:flex;flex-wrap:wrap;gap:8px 18px;list-style:none;padding:0;margin:8px 0 0}
.not-found{text-align:center;padding:64px 16px}
@media (max-width:860px){.index-layout,.grid-2{grid-template-columns:minmax(0,1fr)}.filters{position:static;display:grid;grid-template-columns:repeat(2,minmax(0,1fr));column-gap:12px}.filters h2,.filters .field:first-of-type,.form-actions{grid-column:1/-1}}
@media (max-width:600px){main{padding:14px 12px 40px}.brand{font-size:16px}.nav-links a{padding:6px 8px}.facts dd{font-size:15px}.section{padding:16px 14px;border-radius:12px}h1{font-size:24px}.site-header nav{padding:8px 12px}.uptime-row{grid-template-columns:minmax(0,1fr) auto}.uptime-row .bars{grid-column:1/-1;grid-row:2}.facts{grid-template-columns:repeat(2,minmax(0,1fr))}}
"#;

/// Progressive enhancement only: copy buttons, code tabs (all blocks show without JS) and instant narrowing of
/// the models list while typing. No user data is ever written into this script.
const SCRIPT: &str = r#"
(function(){
var d=document;d.documentElement.classList.add('js');
function select(tab){var list=tab.parentNode;list.querySelectorAll('[role=tab]').forEach(function(t){var on=t===tab;t.setAttribute('aria-selected',on?'true':'false');t.tabIndex=on?0:-1;var p=d.getElementById(t.getAttribute('aria-controls'));if(p)p.hidden=!on;});}
d.querySelectorAll('.tabs [role=tablist]').forEach(function(l){var first=l.querySelector('[role=tab]');if(first)select(first);});
d.addEventListener('click',function(e){
var b=e.target.closest('[data-copy],[data-copy-from]');
if(b){var text=b.getAttribute('data-copy');if(text===null){var src=d.getElementById(b.getAttribute('data-copy-from'));text=src?src.textContent:'';}
if(navigator.clipboard){navigator.clipboard.writeText(text).then(function(){var old=b.textContent;b.textContent='Copied';setTimeout(function(){b.textContent=old;},1200);});}return;}
var t=e.target.closest('[role=tab]');if(t)select(t);});
d.addEventListener('keydown',function(e){var t=e.target.closest&&e.target.closest('[role=tab]');if(!t||(e.key!=='ArrowRight'&&e.key!=='ArrowLeft'))return;
var tabs=Array.prototype.slice.call(t.parentNode.querySelectorAll('[role=tab]'));var i=tabs.indexOf(t)+(e.key==='ArrowRight'?1:-1);var n=tabs[(i+tabs.length)%tabs.length];select(n);n.focus();e.preventDefault();});
var q=d.getElementById('filter-q'),list=d.getElementById('model-list'),count=d.getElementById('shown-count');
if(q&&list){q.addEventListener('input',function(){var words=q.value.toLowerCase().split(/\s+/).filter(Boolean),shown=0;
list.querySelectorAll(':scope>li').forEach(function(li){var hay=li.getAttribute('data-search')||'';var ok=words.every(function(w){return hay.indexOf(w)>=0;});li.hidden=!ok;if(ok)shown++;});
if(count)count.textContent=shown;});}
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_landmarks_and_escapes_the_site_name() {
        let site = Site::new("Yard <&>", "http://x");
        let html = document(
            &site,
            "Models",
            "All \"models\"",
            Nav::Models,
            "<h1>Hi</h1>",
        );
        assert!(html.starts_with("<!doctype html><html lang=\"en\">"));
        assert!(html.contains("<title>Models | Yard &lt;&amp;&gt;</title>"));
        assert!(html.contains(r#"content="All &quot;models&quot;""#));
        assert!(
            html.contains(r#"<main id="main""#)
                && html.contains("<header")
                && html.contains("<footer")
        );
        assert!(html.contains(r#"<a href="/models" aria-current="page">Models</a>"#));
        assert!(html.contains(r#"href="/api/v1/models""#));
        assert_eq!(html.matches("<style>").count(), 1);
        assert!(html.ends_with("</html>"));
    }
}

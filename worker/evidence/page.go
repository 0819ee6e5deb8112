package evidence

// pageHTML is the HTML report's template: everything inline.
const pageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}th.act{background:#f9dedc}
.on_time{color:#2b7bb9}.at_risk{color:#b37400;font-weight:bold}.overdue{color:#c0392b;font-weight:bold}.met{color:#2e8b57}.met_late{color:#8e44ad;font-weight:bold}
.failed{color:#7b241c;font-weight:bold}.unknown{color:#ad1457;font-weight:bold}
td.needs{background:#fdecea;outline:2px solid #c0392b;outline-offset:-2px}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:1em;height:.6em;margin-right:.3em}
.controls{margin:.5em 0}.controls input,.controls select,.controls button{font:inherit;margin-right:.5em}
.note{color:#555;font-size:.85em}.bad{color:#c0392b;font-weight:bold}.good{color:#2e8b57}
#actions li{margin:.3em 0 .7em;max-width:75em;color:#222;font-weight:normal}#actions q{font-style:italic}#actions .detail{color:#555;font-size:.85em}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="note">Generated {{.Generated}} (UTC). <span id="total" data-total="{{.Total}}">{{.Total}}</span> requests. Deadlines: GDPR one month from receipt (extendable by two months), CCPA 45 days (extendable by 45), as configured.</p>
{{with .Verification}}<h2>History</h2><ul id="verification" class="{{if $.VerifyOK}}good{{else}}bad{{end}}">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h2>Summary per project</h2>
<table id="summary"><thead><tr><th rowspan="2">Project</th><th rowspan="2">Requests</th><th colspan="3" class="act">Needs action</th><th colspan="2">Open</th><th colspan="2">Completed</th><th rowspan="2">Median days to complete</th><th rowspan="2">Worst days to complete</th></tr>
<tr>{{range .Outcomes}}<th>{{label .}}</th>{{end}}</tr></thead>
<tbody>{{range $s := .Summary}}<tr data-project="{{$s.Project}}"><td>{{$s.Project}}</td><td class="n" data-k="total">{{$s.Total}}</td>{{range $.Outcomes}}<td class="n {{.}}{{if needs $s .}} needs{{end}}" data-k="{{.}}">{{count $s .}}</td>{{end}}<td class="n" data-k="median">{{days $s.MedianDays}}<span class="note">{{within $s.MedianDays}}</span></td><td class="n" data-k="worst">{{days $s.WorstDays}}<span class="note">{{within $s.WorstDays}}</span></td></tr>
{{end}}</tbody></table>
<p class="note">Each request is counted once. A request not completed that failed, or whose create's outcome is unknown, is counted there whatever its deadline, never as on time or at risk{{if .PastDeadline}}: <b id="past-deadline" data-count="{{.PastDeadline}}">{{.PastDeadline}} of them are past their deadline</b>{{end}}.</p>
{{if .Advice}}<h2>What to do</h2>
<ol id="actions">{{range .Advice}}<li class="advice {{.Outcome}}" data-ref="{{.Ref}}" data-outcome="{{.Outcome}}"><b>{{.Ref}}</b>, project {{.Project}}, {{.Reg}} {{.Kind}}: <span class="{{.Outcome}}">{{if eq .Outcome "failed"}}failed{{else}}outcome unknown{{end}}</span>{{if .Due}} (deadline {{.Due}}, {{.DState}}){{end}}
{{if eq .Outcome "unknown"}}<br>{{if .When}}<span class="when">{{.WhenLabel}} {{.When}}</span>.{{else}}The create's time is not recorded.{{end}}
{{if eq .Kind "retrieval"}}Mixpanel may have filed it: the task may exist and its export may be waiting. The API has no call to list tasks, and the worker does not file a retrieval again, so ask Mixpanel support: <q class="ask">In project {{.Project}}, is there a {{.Reg}} retrieval task created {{if .When}}at about {{.When}}{{else}}around that time{{end}}?</q> If there is, ask for its task ID and its export; if not, enqueue the request again under a new reference.
{{else}}A deletion can be filed again safely: if the first create was accepted, Mixpanel answers 409 naming its task. Resume the job, or file it again.{{end}}
{{if .Purged}}Its distinct IDs were purged after the retention period (only their keyed hashes are kept): ask by project, time and type alone.{{else if .Hashed}}Its distinct IDs are not shown (this report hashes them): find them by the reference, and give them over a channel fit for personal data.{{else}}{{with .IDs}}Distinct IDs (give them over a channel fit for personal data): <span class="ids">{{range $i, $id := .}}{{if $i}}, {{end}}{{$id}}{{end}}</span>.{{end}}{{end}}
{{else}}<br>{{if .When}}<span class="when">{{.WhenLabel}} {{.When}}</span>. {{end}}Find the cause (the detail recorded, below; <code>mpgdpr worker status</code>), then enqueue the request again under a new reference, or record why it cannot be done.{{end}}
{{with .Detail}}<br><span class="detail">Recorded: {{.}}</span>{{end}}</li>
{{end}}</ol>{{if .MoreAdvice}}<p class="note" id="more-actions">{{.MoreAdvice}} more: choose "failed" or "unknown outcome" in the table below.</p>{{end}}{{end}}
<h2>Completed requests: time to complete</h2>
<p class="note">Time from receipt to completion; green completed by the deadline, purple after it.</p>
{{.DoneChart}}
<h2>Open requests: days left to the deadline</h2>
{{.OpenChart}}
<h2>Requests</h2>
<div class="controls">
<input id="q" type="search" placeholder="Filter: reference, project, ID, task" size="36">
<select id="state"><option value="">every state</option>{{range .Outcomes}}<option value="{{.}}">{{label .}}</option>{{end}}</select>
<button id="prev" type="button">&larr; previous</button><button id="next" type="button">next &rarr;</button>
<span id="shown"></span>
</div>
<table id="requests"><thead><tr><th>Reference</th><th>Project</th><th>Kind</th><th>Type</th><th>IDs</th><th>Received</th><th>First filed</th><th>Tasks</th><th>Last status</th><th>Completed</th><th>Days</th><th>Deadline</th><th>State</th><th>Extension</th><th>Notes</th></tr></thead>
<tbody id="rows"></tbody></table>
<noscript><p>The table needs JavaScript; the CSV or JSON report has the same rows.</p></noscript>
<script type="application/json" id="data">{{.Data}}</script>
<script>
(function(){
"use strict";
var all=JSON.parse(document.getElementById("data").textContent||"[]");
var labels={failed:"failed",unknown:"unknown outcome",overdue:"overdue",at_risk:"at risk",on_time:"on time",met:"met",met_late:"met late",cancelled:"cancelled"};
var page=0,size=50,shown=all;
var q=document.getElementById("q"),st=document.getElementById("state"),body=document.getElementById("rows"),info=document.getElementById("shown");
function cell(tr,text,cls){var td=document.createElement("td");td.textContent=text;if(cls)td.className=cls;tr.appendChild(td);}
function render(){
  body.textContent="";
  var pages=Math.max(1,Math.ceil(shown.length/size));if(page>=pages)page=pages-1;
  var from=page*size,to=Math.min(shown.length,from+size);
  for(var i=from;i<to;i++){var r=shown[i],tr=document.createElement("tr");tr.setAttribute("data-ref",r.ref);tr.setAttribute("data-state",r.state);
    var state=labels[r.state]||r.state;if(r.state!==r.dstate&&r.dstate==="overdue")state+=" (overdue)";
    cell(tr,r.ref);cell(tr,r.project);cell(tr,r.kind);cell(tr,r.reg);cell(tr,r.ids);cell(tr,r.received);cell(tr,r.filed);cell(tr,r.tasks);cell(tr,r.status);
    cell(tr,r.completed);cell(tr,r.days<0?"":r.days.toFixed(2),"n");cell(tr,r.due);cell(tr,state,r.state);cell(tr,r.extended);cell(tr,r.notes?String(r.notes):"","n");
    body.appendChild(tr);}
  info.textContent=(shown.length?(from+1)+"\u2013"+to:"0")+" of "+shown.length+(shown.length!==all.length?" (filtered from "+all.length+")":"");
  info.setAttribute("data-matching",String(shown.length));
}
function filter(){
  var t=q.value.toLowerCase(),s=st.value;
  shown=all.filter(function(r){
    if(s&&r.state!==s)return false;
    if(!t)return true;
    return (r.ref+" "+r.project+" "+r.ids+" "+r.tasks+" "+r.kind+" "+r.reg).toLowerCase().indexOf(t)>=0;});
  page=0;render();
}
q.addEventListener("input",filter);st.addEventListener("change",filter);
document.getElementById("prev").addEventListener("click",function(){if(page>0){page--;render();}});
document.getElementById("next").addEventListener("click",function(){if((page+1)*size<shown.length){page++;render();}});
var h=location.hash.match(/^#state=(\w+)$/);if(h){st.value=h[1];}
filter();
})();
</script>
</body></html>
`

(function () {
  var rendered = 0;
  try {
    if (typeof Chart === 'undefined') throw new Error('Chart.js did not load');
    var data = JSON.parse(document.getElementById('deltann-data').textContent);
    var palette = ['#2b6cb0', '#c53030', '#2f855a', '#b7791f', '#6b46c1', '#d53f8c', '#00a3c4',
                   '#4a5568', '#dd6b20', '#38a169', '#805ad5', '#e53e3e'];
    var colour = function (i) { return palette[i % palette.length]; };
    Chart.defaults.animation = false;
    Chart.defaults.font.family = 'system-ui, "DejaVu Sans", sans-serif';
    var timed = data.variants.filter(function (v) { return v.cdf.length > 0; });
    // A logarithmic axis once the values span more than `ratio`: latency tails are long.
    var logScale = function (low, high, ratio) { return low > 0 && high / low > ratio; };

    var cdfCanvas = document.getElementById('chart-cdf');
    if (cdfCanvas && timed.length > 0) {
      var lows = timed.map(function (v) { return v.cdf[0][0]; });
      var highs = timed.map(function (v) { return v.cdf[v.cdf.length - 1][0]; });
      new Chart(cdfCanvas, {
        type: 'line',
        data: {
          datasets: timed.map(function (v) {
            return {
              label: v.name + ' ' + v.env,
              data: v.cdf.map(function (p) { return {x: p[0], y: p[1]}; }),
              borderColor: colour(v.index), backgroundColor: colour(v.index),
              borderWidth: 2, pointRadius: 0, stepped: 'after', fill: false
            };
          })
        },
        options: {
          responsive: true, maintainAspectRatio: false, parsing: true,
          interaction: {mode: 'nearest', intersect: false},
          scales: {
            x: {type: logScale(Math.min.apply(null, lows), Math.max.apply(null, highs), 4) ?
                      'logarithmic' : 'linear',
                title: {display: true, text: 'latency per inference (ms)'}},
            y: {min: 0, max: 1, title: {display: true, text: 'fraction of samples \u2264 x'}}
          },
          plugins: {
            legend: {position: 'bottom', labels: {boxWidth: 14}},
            tooltip: {callbacks: {label: function (item) {
              return item.dataset.label + ': ' + item.parsed.x + ' ms (' +
                     (100 * item.parsed.y).toFixed(1) + '%)';
            }}}
          }
        }
      });
      rendered += 1;
    }

    var barCanvas = document.getElementById('chart-medians');
    if (barCanvas && timed.length > 0) {
      var low = Math.min.apply(null, timed.map(function (v) { return v.p10; }));
      var high = Math.max.apply(null, timed.map(function (v) { return v.p90; }));
      new Chart(barCanvas, {
        type: 'bar',
        data: {
          labels: timed.map(function (v) { return v.name; }),
          datasets: [
            {type: 'bar', label: 'p10\u2013p90', order: 2,
             data: timed.map(function (v) { return [v.p10, v.p90]; }),
             backgroundColor: timed.map(function (v) { return colour(v.index) + '66'; }),
             borderColor: timed.map(function (v) { return colour(v.index); }), borderWidth: 1},
            {type: 'line', label: 'median', order: 1, showLine: false,
             data: timed.map(function (v) { return v.p50; }),
             borderColor: '#1d2430', backgroundColor: '#1d2430', pointStyle: 'line',
             pointRadius: 16, pointHoverRadius: 16, pointBorderWidth: 3}
          ]
        },
        options: {
          responsive: true, maintainAspectRatio: false,
          scales: {
            y: {type: logScale(low, high, 20) ? 'logarithmic' : 'linear', beginAtZero: false, grace: '10%',
                title: {display: true, text: 'latency per inference (ms)'}},
            x: {title: {display: true, text: 'variant'}}
          },
          plugins: {
            legend: {position: 'bottom'},
            tooltip: {callbacks: {title: function (items) {
              var v = timed[items[0].dataIndex];
              return v.name + ' ' + v.env;
            }}}
          }
        }
      });
      rendered += 1;
    }

    (data.localizations || []).forEach(function (loc) {
      var canvas = document.getElementById(loc.canvas);
      if (!canvas) return;
      var sets = [{label: 'A vs B', data: loc.rel, borderColor: colour(0),
                   backgroundColor: colour(0), borderWidth: 2, spanGaps: false,
                   pointRadius: loc.rel.map(function (_, i) { return i === loc.jump ? 7 : 1.5; }),
                   pointStyle: loc.rel.map(function (_, i) {
                     return i === loc.jump ? 'triangle' : 'circle'; })}];
      loc.references.forEach(function (r, k) {
        sets.push({label: r.env + ' vs A', data: r.to_a, borderColor: colour(2 * k + 1),
                   backgroundColor: colour(2 * k + 1), borderWidth: 1, pointRadius: 0,
                   borderDash: [4, 3]});
        sets.push({label: r.env + ' vs B', data: r.to_b, borderColor: colour(2 * k + 2),
                   backgroundColor: colour(2 * k + 2), borderWidth: 1, pointRadius: 0,
                   borderDash: [1, 2]});
      });
      if (typeof loc.threshold === 'number' && loc.threshold > 0)
        sets.push({label: 'threshold', data: loc.rel.map(function () { return loc.threshold; }),
                   borderColor: '#718096', borderWidth: 1, pointRadius: 0, borderDash: [8, 4]});
      new Chart(canvas, {
        type: 'line',
        data: {labels: loc.layers.map(function (_, i) { return i; }), datasets: sets},
        options: {
          responsive: true, maintainAspectRatio: false,
          interaction: {mode: 'index', intersect: false},
          scales: {
            x: {title: {display: true, text: 'matched layer (A\u2019s execution order)'}},
            y: {type: 'logarithmic', title: {display: true, text: 'relative L2 error'}}
          },
          plugins: {
            legend: {position: 'bottom', labels: {boxWidth: 14}},
            tooltip: {callbacks: {title: function (items) {
              var i = items[0].dataIndex;
              return '#' + i + ' ' + loc.layers[i] + (i === loc.jump ? '  \u2190 first jump' : '');
            }}}
          }
        }
      });
      rendered += 1;
    });
  } catch (error) {
    window.deltannRecordError('charts: ' + (error && error.stack ? error.stack : String(error)));
  }
  document.body.dataset.chartsRendered = String(rendered);
})();

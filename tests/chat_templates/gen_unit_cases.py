#!/usr/bin/env python3
"""Regenerates the expected outputs of kCases in src/tokenizer/jinja/jinja_test.cc with
jinja2 (render_ref.make_env), printing C++ rows to paste there."""
import json, sys, datetime
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
import render_ref
env = render_ref.make_env()
CTX = {"s": "héllo", "l": [1, 2, 3], "d": {"a": 1, "b": [True, None, 1.5]},
       "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}]}
groups = {
 "Whitespace": [
  "  {% if true %}\n  x\n  {% endif %}\ny", "a {# c #}\nb", "a\n  {# c #}\nb", "{% if true %}\r\nA\r\n{% endif %}\r\n",
  "{%- if true -%}\n\n  A  \n\n{%- endif -%}\n\n B", "{{ 1 }}  {% if true %}A{% endif %}", "x\n\t {%- if true %}A{% endif +%}\nB",
  "a  {%+ if true %}x{% endif %}", "{% raw %}\n  {{ a }}\n  {% endraw %}\nb", "  {{- 1 -}}  \n x", "{{ 1 }}\n",
  "{% for i in l %}\n  {{ i }}\n{% endfor %}\n", "{%- for i in l -%}\n  {{- i -}}\n{%- endfor -%}"],
 "Literals": [
  "{{ 'a\\n\\x41\\u00e9\\q' }}", "{{ \"a\" 'b' }}", "{{ 1_000 }} {{ 1.5e3 }} {{ 1e3 }} {{ 0x10 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }}",
  "{{ [1, 'a', none, true, 1.5, {'k': (1,)}] }}", "{{ {'a': {'b': 1}} }}", "{{ 1, 2 }}", "{{ () }}{{ (1,) }}", "{{ True }}{{ None }}{{ false }}",
  "{{ 'it\\'s' }}{{ ['it\\'s', \"q\\\"\"] }}"],
 "Operators": [
  "{{ 10/4 }} {{ 10//4 }} {{ -7//2 }} {{ -7%3 }} {{ 2**-1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
  "{{ 1 + 2 * 3 }}{{ (1 + 2) * 3 }}{{ 10 - 2 - 3 }}{{ -l[0]|abs }}", "{{ 'a' ~ 1 ~ none ~ true }}{{ 'a' + 'b' }}{{ [1] + [2] }}",
  "{{ 'abc' * 2 }}{{ [1] * 2 }}{{ 3 * 'x' }}{{ 'a' * -1 }}{{ true + 1 }}", "{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ [1, 2] < [1, 3] }}{{ 'a' < 'b' }}",
  "{{ (1, 2) == [1, 2] }}{{ 1 == 1.0 }}{{ true == 1 }}{{ none == none }}{{ u == u }}{{ u == none }}",
  "{{ 'a' in 'abc' }}{{ 'z' not in 'abc' }}{{ 1 in l }}{{ 'a' in d }}{{ 'zz' in d }}{{ 'a' in u }}",
  "{{ not true }}{{ true and false }}{{ none or 'x' }}{{ 0 and 1 }}{{ '' or [] }}{{ not u }}",
  "{{ 1 if true }}{{ 1 if false }}{{ 1 if false else 2 }}", "{{ '%s-%d' % ('a', 3) }}"],
 "Access": [
  "{{ s[1] }}{{ s|length }}{{ s[::-1] }}{{ s[-1] }}{{ s[1:3] }}", "{{ l[::-1] }}{{ l[-2:] }}{{ l[:-1] }}{{ l[::2] }}{{ l[5:] }}{{ l[3:0:-1] }}{{ l.0 }}",
  "{{ d.a }}{{ d['a'] }}{{ d.b[2] }}{{ d.zz }}{{ d['zz'] }}{{ l[10] }}{{ d.a.b }}", "{{ msgs[1].tool_calls[0].function.arguments.x }}",
  "{{ d.get('a') }}{{ d.get('zz') }}{{ d.get('zz', 5) }}", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}"],
 "Undefined": [
  "{{ u }}|{{ u is defined }}{{ u is undefined }}{{ u|length }}{{ u|default('d') }}{{ u ~ 'a' }}{{ u|upper }}{{ u|list }}{{ u|items|list }}",
  "{% for x in u %}x{% else %}empty{% endfor %}", "{{ u is sequence }}{{ u is iterable }}{{ u is mapping }}"],
 "StringMethods": [
  "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'xxa'.lstrip('x') }}|{{ 'axx'.rstrip('x') }}",
  "{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b c'.rsplit(' ', 1) }}{{ '  a b c  '.rsplit(None, 1) }}{{ 'a b'.split(maxsplit=0) }}",
  "{{ 'abc'.startswith('a') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}",
  "{{ 'aXa'.replace('a', 'b') }}{{ 'aaa'.replace('a', 'b', 2) }}", "{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}{{ 'AbÇ'.upper() }}{{ 'AbÇ'.lower() }}",
  "{{ 'abcabc'.find('c') }}{{ 'abcabc'.rfind('c') }}{{ 'abcabc'.count('bc') }}{{ 'héllo'.find('l') }}",
  "{{ 'a\\nb\\r\\nc'.splitlines() }}{{ '-'.join(['a', 'b']) }}{{ '{} and {}'.format(1, 'x') }}{{ '{name}!'.format(name='N') }}",
  "{{ msgs[0].content.upper() }}{{ '</think>x'.split('</think>')[-1].lstrip('\\n') }}"],
 "Filters": [
  "{{ l|join(', ') }}{{ l|length }}{{ l|first }}{{ l|last }}{{ l|sum }}{{ l|max }}{{ l|min }}{{ l|reverse|list }}",
  "{{ [3, 1, 2]|sort(reverse=true) }}{{ ['b', 'A', 'a']|sort }}{{ [{'n': 'b'}, {'n': 'a'}]|sort(attribute='n') }}{{ ['b', 'A', 'a']|unique|list }}",
  "{{ msgs|selectattr('role', 'equalto', 'user')|list|length }}{{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='role')|list }}{{ msgs|selectattr('tool_calls', 'defined')|list|length }}",
  "{{ msgs|map(attribute='content')|join('|') }}{{ ['a', 'b']|map('upper')|join(',') }}{{ l|map('string')|join }}",
  "{{ l|select('odd')|list }}{{ l|reject('odd')|list }}{{ l|select('gt', 1)|list }}",
  "{{ 'abc'|upper }}{{ 'ABC'|lower }}{{ 'hello world-foo(bar'|title }}{{ 'hELLO'|capitalize }}{{ '  x  '|trim }}{{ 'xxaxx'|trim('x') }}{{ 'aa'|replace('a', 'b') }}",
  "{{ 1|string }}{{ ' 42 '|int }}{{ '4.7'|int }}{{ 'x'|int(7) }}{{ '3.5'|float }}{{ 'x'|float }}{{ -3|abs }}{{ 3.7|round }}{{ 2.5|round }}{{ 3.14159|round(2) }}{{ 2.5|round(0, 'floor') }}{{ 5|round }}",
  "{{ {'b': 2, 'a': 1}|dictsort }}{{ {'b': 2, 'a': 1}|items|list }}{{ {'x': 1}|first }}", "{{ '<b>\"&'|e }}{{ '<b>'|safe }}{{ 'a\\nb'|indent(4) }}{{ 'a\\n\\nb'|indent(2, true, true) }}{{ 'one two-three'|wordcount }}",
  "{{ range(5)|batch(2)|list }}{{ range(5)|batch(2, 'x')|list }}", "{{ none|default('x') }}{{ false|default('x', true) }}{{ ''|d('y', boolean=true) }}",
  "{{ none|string }}{{ none|upper }}{{ []|first }}{{ []|max }}"],
 "Tojson": [
  "{{ d|tojson }}", "{{ d|tojson(indent=2) }}", "{{ [1, [], {}]|tojson(indent=2) }}", "{{ msgs|tojson(separators=(',', ':')) }}",
  "{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", "{{ 'é\"\\n\\t\\u0001/'|tojson }}{{ 'é😀'|tojson(ensure_ascii=true) }}", "{{ 1.0|tojson }}{{ 1e100|tojson }}{{ none|tojson }}",
  "{{ d|tojson(indent='\\t') }}", "{{ (1, 2)|tojson }}{{ {1: 'a', true: 'b', none: 'c'}|tojson }}"],
 "Tests": [
  "{{ 5 is divisibleby(5) }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ 1 is integer }}{{ true is integer }}{{ 1.5 is number }}{{ true is number }}{{ true is boolean }}{{ false is false }}{{ true is true }}{{ 1.0 is float }}",
  "{{ l is iterable }}{{ l is sequence }}{{ 3 is odd }}{{ 3 is even }}{{ 1 is equalto 1 }}{{ 1 is ne 2 }}{{ 'a' is lower }}{{ 'A' is upper }}{{ 'a' is in 'abc' }}{{ range is callable }}{{ 1 is gt 0 }}",
  "{{ 6 is divisibleby 3 }}{{ x is not defined }}{{ not x is defined }}"],
 "Statements": [
  "{% for a, b in [(1, 2), (3, 4)] if a > 1 %}{{ a }}{{ b }}{{ loop.index }}/{{ loop.length }}{{ loop.first }}{{ loop.previtem }}{% endfor %}",
  "{% for x in 'ab' %}{{ loop.index0 }}{{ x }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.last }}{{ loop.nextitem }}{{ loop.cycle('o', 'e') }}{% endfor %}",
  "{% for x in l %}{% if loop.changed(x > 1) %}C{% endif %}{% endfor %}", "{% for x in l %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
  "{% for x in l if x > 5 %}{{ x }}{% else %}none{% endfor %}", "{% for i in range(3) %}{% for j in range(2) %}{{ loop.index }}{% if j %}{% break %}{% endif %}{% endfor %}{{ loop.index }}{% endfor %}",
  "{% set x = 0 %}{% for i in l %}{{ x }}{% set x = i %}{{ x }}{% endfor %}|{{ x }}", "{% if true %}{% set y = 1 %}{% endif %}{{ y }}",
  "{% set ns = namespace(a=1) %}{% for i in l %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns }}{{ namespace({'b': 2}).b }}",
  "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = (3, 4) %}{{ c }}", "{% set x %}  ab {{ 1 }}{% endset %}[{{ x|trim }}][{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}",
  "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", "{% filter upper %}abc{{ 'd' }}{% endfilter %}",
  "{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}{{ m(1, 3, 4, c=5) }}{{ m(b=0, a=9) }}",
  "{% macro m(a) %}[{{ caller(a) }}]{% endmacro %}{% call(x) m(5) %}in{{ x }}{% endcall %}",
  "{% macro f(x) %}{% if x > 0 %}{{ x }}{{ f(x - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", "{% macro m() %}{{ z }}{% endmacro %}{% set z = 5 %}{{ m() }}",
  "{% generation %}gen{% endgeneration %}", "{{ strftime_now('%d %b %Y') }}"],
 "Errors": [
  "{{ u.v }}", "{{ u + 1 }}", "{{ u|tojson }}", "{{ l.append(4) }}", "{{ 1 + 'a' }}", "{{ 1 < 'a' }}", "{{ 1 / 0 }}", "{{ 5|length }}", "{{ raise_exception('boom') }}",
  "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "{% set x = 1 %}{% set x.y = 2 %}", "{{ range(100001)|length }}", "{% for a, b in [1] %}{% endfor %}",
  "{{ 'x' }", "{% if %}", "{% for %}", "{% endif %}", "{{ }}", "{% if true %}", "{{ 1 +}}", "{% set x = [1, 2, %}", "{% break %}",
  "{% for i in [] %}{{ x|nosuch }}{% endfor %}", "{{ 1 is nosuchtest }}", "{% include 'x' %}", "{% foo %}", "{{ 'unterminated }}", "{# unterminated", "{{ ) }}",
  "{% if false %}{% filter nosuch %}{% endfilter %}{% endif %}"],
 "NotErrors": ["{% if l.append %}x{% endif %}ok", "{% if false %}{{ x|nosuch }}{% endif %}ok", "{{ (x|nosuch) if false else 1 }}"],
}
def cstr(s):
    assert ')jinja"' not in s
    if any(ord(c) < 32 and c != "\n" for c in s):
        out = '"'
        for c in s:
            if c == "\\": out += "\\\\"
            elif c == '"': out += '\\"'
            elif c == "\n": out += "\\n"
            elif ord(c) < 32: out += "\\x%02x\"\"" % ord(c)
            else: out += c
        return out + '"'
    return 'R"jinja(' + s + ')jinja"'
out = []
for g, ts in groups.items():
    out.append(f"// {g}")
    for t in ts:
        try:
            r = env.from_string(t).render(**json.loads(json.dumps(CTX)))
            out.append(f"    {{{cstr(t)}, {cstr(r)}, false}},")
        except Exception as e:
            out.append(f"    {{{cstr(t)}, \"\", true}},  // {type(e).__name__}")
print("\n".join(out))

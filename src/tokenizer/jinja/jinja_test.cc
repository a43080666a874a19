// Unit tests of the interpreter, one row per feature. The expected outputs of the table
// are what Python's jinja2 3.1 renders for the same template and context under
// transformers' settings (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, transformers' tojson); an error row means jinja2 raised.
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tokenizer/jinja/jinja.h"

namespace tide::jinja {
namespace {

struct Case {
  const char* tmpl;
  const char* want;
  bool error;
};

const Case kCases[] = {
// Whitespace
    {R"jinja(  {% if true %}
  x
  {% endif %}
y)jinja", R"jinja(  x
y)jinja", false},
    {R"jinja(a {# c #}
b)jinja", R"jinja(a b)jinja", false},
    {R"jinja(a
  {# c #}
b)jinja", R"jinja(a
b)jinja", false},
    {"{% if true %}\x0d""\nA\x0d""\n{% endif %}\x0d""\n", R"jinja(A
)jinja", false},
    {R"jinja({%- if true -%}

  A  

{%- endif -%}

 B)jinja", R"jinja(AB)jinja", false},
    {R"jinja({{ 1 }}  {% if true %}A{% endif %})jinja", R"jinja(1  A)jinja", false},
    {"x\n\x09"" {%- if true %}A{% endif +%}\nB", R"jinja(xA
B)jinja", false},
    {R"jinja(a  {%+ if true %}x{% endif %})jinja", R"jinja(a  x)jinja", false},
    {R"jinja({% raw %}
  {{ a }}
  {% endraw %}
b)jinja", R"jinja(
  {{ a }}
b)jinja", false},
    {R"jinja(  {{- 1 -}}  
 x)jinja", R"jinja(1x)jinja", false},
    {R"jinja({{ 1 }}
)jinja", R"jinja(1)jinja", false},
    {R"jinja({% for i in l %}
  {{ i }}
{% endfor %}
)jinja", R"jinja(  1
  2
  3
)jinja", false},
    {R"jinja({%- for i in l -%}
  {{- i -}}
{%- endfor -%})jinja", R"jinja(123)jinja", false},
// Literals
    {R"jinja({{ 'a\n\x41\u00e9\q' }})jinja", R"jinja(a
Aé\q)jinja", false},
    {R"jinja({{ "a" 'b' }})jinja", R"jinja(ab)jinja", false},
    {R"jinja({{ 1_000 }} {{ 1.5e3 }} {{ 1e3 }} {{ 0x10 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }})jinja", R"jinja(1000 1500.0 1000.0 16 0.30000000000000004 1e+16 1e-05)jinja", false},
    {R"jinja({{ [1, 'a', none, true, 1.5, {'k': (1,)}] }})jinja", R"jinja([1, 'a', None, True, 1.5, {'k': (1,)}])jinja", false},
    {R"jinja({{ {'a': {'b': 1}} }})jinja", R"jinja({'a': {'b': 1}})jinja", false},
    {R"jinja({{ 1, 2 }})jinja", R"jinja((1, 2))jinja", false},
    {R"jinja({{ () }}{{ (1,) }})jinja", R"jinja(()(1,))jinja", false},
    {R"jinja({{ True }}{{ None }}{{ false }})jinja", R"jinja(TrueNoneFalse)jinja", false},
    {R"jinja({{ 'it\'s' }}{{ ['it\'s', "q\""] }})jinja", R"jinja(it's["it's", 'q"'])jinja", false},
// Operators
    {R"jinja({{ 10/4 }} {{ 10//4 }} {{ -7//2 }} {{ -7%3 }} {{ 2**-1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }})jinja", R"jinja(2.5 2 -4 2 0.5 64 4 3.0 0.5)jinja", false},
    {R"jinja({{ 1 + 2 * 3 }}{{ (1 + 2) * 3 }}{{ 10 - 2 - 3 }}{{ -l[0]|abs }})jinja", R"jinja(7951)jinja", false},
    {R"jinja({{ 'a' ~ 1 ~ none ~ true }}{{ 'a' + 'b' }}{{ [1] + [2] }})jinja", R"jinja(a1NoneTrueab[1, 2])jinja", false},
    {R"jinja({{ 'abc' * 2 }}{{ [1] * 2 }}{{ 3 * 'x' }}{{ 'a' * -1 }}{{ true + 1 }})jinja", R"jinja(abcabc[1, 1]xxx2)jinja", false},
    {R"jinja({{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ [1, 2] < [1, 3] }}{{ 'a' < 'b' }})jinja", R"jinja(TrueFalseTrueTrue)jinja", false},
    {R"jinja({{ (1, 2) == [1, 2] }}{{ 1 == 1.0 }}{{ true == 1 }}{{ none == none }}{{ u == u }}{{ u == none }})jinja", R"jinja(FalseTrueTrueTrueTrueFalse)jinja", false},
    {R"jinja({{ 'a' in 'abc' }}{{ 'z' not in 'abc' }}{{ 1 in l }}{{ 'a' in d }}{{ 'zz' in d }}{{ 'a' in u }})jinja", R"jinja(TrueTrueTrueTrueFalseFalse)jinja", false},
    {R"jinja({{ not true }}{{ true and false }}{{ none or 'x' }}{{ 0 and 1 }}{{ '' or [] }}{{ not u }})jinja", R"jinja(FalseFalsex0[]True)jinja", false},
    {R"jinja({{ 1 if true }}{{ 1 if false }}{{ 1 if false else 2 }})jinja", R"jinja(12)jinja", false},
    {R"jinja({{ '%s-%d' % ('a', 3) }})jinja", R"jinja(a-3)jinja", false},
// Access
    {R"jinja({{ s[1] }}{{ s|length }}{{ s[::-1] }}{{ s[-1] }}{{ s[1:3] }})jinja", R"jinja(é5olléhoél)jinja", false},
    {R"jinja({{ l[::-1] }}{{ l[-2:] }}{{ l[:-1] }}{{ l[::2] }}{{ l[5:] }}{{ l[3:0:-1] }}{{ l.0 }})jinja", R"jinja([3, 2, 1][2, 3][1, 2][1, 3][][3, 2]1)jinja", false},
    {R"jinja({{ d.a }}{{ d['a'] }}{{ d.b[2] }}{{ d.zz }}{{ d['zz'] }}{{ l[10] }}{{ d.a.b }})jinja", R"jinja(111.5)jinja", false},
    {R"jinja({{ msgs[1].tool_calls[0].function.arguments.x }})jinja", R"jinja(1)jinja", false},
    {R"jinja({{ d.get('a') }}{{ d.get('zz') }}{{ d.get('zz', 5) }})jinja", R"jinja(1None5)jinja", false},
    {R"jinja({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %})jinja", R"jinja(a=1;b=[True, None, 1.5];ab)jinja", false},
// Undefined
    {R"jinja({{ u }}|{{ u is defined }}{{ u is undefined }}{{ u|length }}{{ u|default('d') }}{{ u ~ 'a' }}{{ u|upper }}{{ u|list }}{{ u|items|list }})jinja", R"jinja(|FalseTrue0da[][])jinja", false},
    {R"jinja({% for x in u %}x{% else %}empty{% endfor %})jinja", R"jinja(empty)jinja", false},
    {R"jinja({{ u is sequence }}{{ u is iterable }}{{ u is mapping }})jinja", R"jinja(TrueTrueFalse)jinja", false},
// StringMethods
    {R"jinja({{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'xxa'.lstrip('x') }}|{{ 'axx'.rstrip('x') }})jinja", R"jinja(a b|a|a|a)jinja", false},
    {R"jinja({{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b c'.rsplit(' ', 1) }}{{ '  a b c  '.rsplit(None, 1) }}{{ 'a b'.split(maxsplit=0) }})jinja", R"jinja(['a', 'b', '', 'c']['a', 'b']['a', 'b c']['a b', 'c']['  a b', 'c']['a b'])jinja", false},
    {R"jinja({{ 'abc'.startswith('a') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }})jinja", R"jinja(TrueTrueTrue)jinja", false},
    {R"jinja({{ 'aXa'.replace('a', 'b') }}{{ 'aaa'.replace('a', 'b', 2) }})jinja", R"jinja(bXbbba)jinja", false},
    {R"jinja({{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}{{ 'AbÇ'.upper() }}{{ 'AbÇ'.lower() }})jinja", R"jinja(Hello WorldHelloABÇabç)jinja", false},
    {R"jinja({{ 'abcabc'.find('c') }}{{ 'abcabc'.rfind('c') }}{{ 'abcabc'.count('bc') }}{{ 'héllo'.find('l') }})jinja", R"jinja(2522)jinja", false},
    {R"jinja({{ 'a\nb\r\nc'.splitlines() }}{{ '-'.join(['a', 'b']) }}{{ '{} and {}'.format(1, 'x') }}{{ '{name}!'.format(name='N') }})jinja", R"jinja(['a', 'b', 'c']a-b1 and xN!)jinja", false},
    {R"jinja({{ msgs[0].content.upper() }}{{ '</think>x'.split('</think>')[-1].lstrip('\n') }})jinja", R"jinja(HIx)jinja", false},
// Filters
    {R"jinja({{ l|join(', ') }}{{ l|length }}{{ l|first }}{{ l|last }}{{ l|sum }}{{ l|max }}{{ l|min }}{{ l|reverse|list }})jinja", R"jinja(1, 2, 3313631[3, 2, 1])jinja", false},
    {R"jinja({{ [3, 1, 2]|sort(reverse=true) }}{{ ['b', 'A', 'a']|sort }}{{ [{'n': 'b'}, {'n': 'a'}]|sort(attribute='n') }}{{ ['b', 'A', 'a']|unique|list }})jinja", R"jinja([3, 2, 1]['A', 'a', 'b'][{'n': 'a'}, {'n': 'b'}]['b', 'A'])jinja", false},
    {R"jinja({{ msgs|selectattr('role', 'equalto', 'user')|list|length }}{{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='role')|list }}{{ msgs|selectattr('tool_calls', 'defined')|list|length }})jinja", R"jinja(1['assistant']1)jinja", false},
    {R"jinja({{ msgs|map(attribute='content')|join('|') }}{{ ['a', 'b']|map('upper')|join(',') }}{{ l|map('string')|join }})jinja", R"jinja(hi|yoA,B123)jinja", false},
    {R"jinja({{ l|select('odd')|list }}{{ l|reject('odd')|list }}{{ l|select('gt', 1)|list }})jinja", R"jinja([1, 3][2][2, 3])jinja", false},
    {R"jinja({{ 'abc'|upper }}{{ 'ABC'|lower }}{{ 'hello world-foo(bar'|title }}{{ 'hELLO'|capitalize }}{{ '  x  '|trim }}{{ 'xxaxx'|trim('x') }}{{ 'aa'|replace('a', 'b') }})jinja", R"jinja(ABCabcHello World-Foo(BarHelloxabb)jinja", false},
    {R"jinja({{ 1|string }}{{ ' 42 '|int }}{{ '4.7'|int }}{{ 'x'|int(7) }}{{ '3.5'|float }}{{ 'x'|float }}{{ -3|abs }}{{ 3.7|round }}{{ 2.5|round }}{{ 3.14159|round(2) }}{{ 2.5|round(0, 'floor') }}{{ 5|round }})jinja", R"jinja(142473.50.034.02.03.142.05)jinja", false},
    {R"jinja({{ {'b': 2, 'a': 1}|dictsort }}{{ {'b': 2, 'a': 1}|items|list }}{{ {'x': 1}|first }})jinja", R"jinja([('a', 1), ('b', 2)][('b', 2), ('a', 1)]x)jinja", false},
    {R"jinja({{ '<b>"&'|e }}{{ '<b>'|safe }}{{ 'a\nb'|indent(4) }}{{ 'a\n\nb'|indent(2, true, true) }}{{ 'one two-three'|wordcount }})jinja", R"jinja(&lt;b&gt;&#34;&amp;<b>a
    b  a
  
  b3)jinja", false},
    {R"jinja({{ range(5)|batch(2)|list }}{{ range(5)|batch(2, 'x')|list }})jinja", R"jinja([[0, 1], [2, 3], [4]][[0, 1], [2, 3], [4, 'x']])jinja", false},
    {R"jinja({{ none|default('x') }}{{ false|default('x', true) }}{{ ''|d('y', boolean=true) }})jinja", R"jinja(Nonexy)jinja", false},
    {R"jinja({{ none|string }}{{ none|upper }}{{ []|first }}{{ []|max }})jinja", R"jinja(NoneNONE)jinja", false},
// Tojson
    {R"jinja({{ d|tojson }})jinja", R"jinja({"a": 1, "b": [true, null, 1.5]})jinja", false},
    {R"jinja({{ d|tojson(indent=2) }})jinja", R"jinja({
  "a": 1,
  "b": [
    true,
    null,
    1.5
  ]
})jinja", false},
    {R"jinja({{ [1, [], {}]|tojson(indent=2) }})jinja", R"jinja([
  1,
  [],
  {}
])jinja", false},
    {R"jinja({{ msgs|tojson(separators=(',', ':')) }})jinja", R"jinja([{"role":"user","content":"hi"},{"role":"assistant","content":"yo","tool_calls":[{"function":{"name":"f","arguments":{"x":1}}}]}])jinja", false},
    {R"jinja({{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }})jinja", R"jinja({"a": 2, "b": 1})jinja", false},
    {R"jinja({{ 'é"\n\t\u0001/'|tojson }}{{ 'é😀'|tojson(ensure_ascii=true) }})jinja", R"jinja("é\"\n\t\u0001/""\u00e9\ud83d\ude00")jinja", false},
    {R"jinja({{ 1.0|tojson }}{{ 1e100|tojson }}{{ none|tojson }})jinja", R"jinja(1.01e+100null)jinja", false},
    {R"jinja({{ d|tojson(indent='\t') }})jinja", "{\n\x09""\"a\": 1,\n\x09""\"b\": [\n\x09""\x09""true,\n\x09""\x09""null,\n\x09""\x09""1.5\n\x09""]\n}", false},
    {R"jinja({{ (1, 2)|tojson }}{{ {1: 'a', true: 'b', none: 'c'}|tojson }})jinja", R"jinja([1, 2]{"1": "b", "null": "c"})jinja", false},
// Tests
    {R"jinja({{ 5 is divisibleby(5) }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ 1 is integer }}{{ true is integer }}{{ 1.5 is number }}{{ true is number }}{{ true is boolean }}{{ false is false }}{{ true is true }}{{ 1.0 is float }})jinja", R"jinja(TrueTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrue)jinja", false},
    {R"jinja({{ l is iterable }}{{ l is sequence }}{{ 3 is odd }}{{ 3 is even }}{{ 1 is equalto 1 }}{{ 1 is ne 2 }}{{ 'a' is lower }}{{ 'A' is upper }}{{ 'a' is in 'abc' }}{{ range is callable }}{{ 1 is gt 0 }})jinja", R"jinja(TrueTrueTrueFalseTrueTrueTrueTrueTrueTrueTrue)jinja", false},
    {R"jinja({{ 6 is divisibleby 3 }}{{ x is not defined }}{{ not x is defined }})jinja", R"jinja(TrueTrueTrue)jinja", false},
// Statements
    {R"jinja({% for a, b in [(1, 2), (3, 4)] if a > 1 %}{{ a }}{{ b }}{{ loop.index }}/{{ loop.length }}{{ loop.first }}{{ loop.previtem }}{% endfor %})jinja", R"jinja(341/1True)jinja", false},
    {R"jinja({% for x in 'ab' %}{{ loop.index0 }}{{ x }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.last }}{{ loop.nextitem }}{{ loop.cycle('o', 'e') }}{% endfor %})jinja", R"jinja(0a21Falsebo1b10Truee)jinja", false},
    {R"jinja({% for x in l %}{% if loop.changed(x > 1) %}C{% endif %}{% endfor %})jinja", R"jinja(CC)jinja", false},
    {R"jinja({% for x in l %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %})jinja", R"jinja(1)jinja", false},
    {R"jinja({% for x in l if x > 5 %}{{ x }}{% else %}none{% endfor %})jinja", R"jinja(none)jinja", false},
    {R"jinja({% for i in range(3) %}{% for j in range(2) %}{{ loop.index }}{% if j %}{% break %}{% endif %}{% endfor %}{{ loop.index }}{% endfor %})jinja", R"jinja(121122123)jinja", false},
    {R"jinja({% set x = 0 %}{% for i in l %}{{ x }}{% set x = i %}{{ x }}{% endfor %}|{{ x }})jinja", R"jinja(010203|0)jinja", false},
    {R"jinja({% if true %}{% set y = 1 %}{% endif %}{{ y }})jinja", R"jinja(1)jinja", false},
    {R"jinja({% set ns = namespace(a=1) %}{% for i in l %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns }}{{ namespace({'b': 2}).b }})jinja", R"jinja(7<Namespace {'a': 7}>2)jinja", false},
    {R"jinja({% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = (3, 4) %}{{ c }})jinja", R"jinja(12(3, 4))jinja", false},
    {R"jinja({% set x %}  ab {{ 1 }}{% endset %}[{{ x|trim }}][{{ x }}]{% set y | upper %}abc{% endset %}{{ y }})jinja", R"jinja([ab 1][  ab 1]ABC)jinja", false},
    {R"jinja({% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }})jinja", R"jinja(3)jinja", false},
    {R"jinja({% filter upper %}abc{{ 'd' }}{% endfilter %})jinja", R"jinja(ABCD)jinja", false},
    {R"jinja({% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}{{ m(1, 3, 4, c=5) }}{{ m(b=0, a=9) }})jinja", R"jinja(12(){}13(4,){'c': 5}90(){})jinja", false},
    {R"jinja({% macro m(a) %}[{{ caller(a) }}]{% endmacro %}{% call(x) m(5) %}in{{ x }}{% endcall %})jinja", R"jinja([in5])jinja", false},
    {R"jinja({% macro f(x) %}{% if x > 0 %}{{ x }}{{ f(x - 1) }}{% endif %}{% endmacro %}{{ f(3) }})jinja", R"jinja(321)jinja", false},
    {R"jinja({% macro m() %}{{ z }}{% endmacro %}{% set z = 5 %}{{ m() }})jinja", R"jinja(5)jinja", false},
    {R"jinja({% generation %}gen{% endgeneration %})jinja", R"jinja(gen)jinja", false},
    {R"jinja({{ strftime_now('%d %b %Y') }})jinja", R"jinja(26 Jul 2024)jinja", false},
// Errors
    {R"jinja({{ u.v }})jinja", "", true},  // UndefinedError
    {R"jinja({{ u + 1 }})jinja", "", true},  // UndefinedError
    {R"jinja({{ u|tojson }})jinja", "", true},  // TypeError
    {R"jinja({{ l.append(4) }})jinja", "", true},  // SecurityError
    {R"jinja({{ 1 + 'a' }})jinja", "", true},  // TypeError
    {R"jinja({{ 1 < 'a' }})jinja", "", true},  // TypeError
    {R"jinja({{ 1 / 0 }})jinja", "", true},  // ZeroDivisionError
    {R"jinja({{ 5|length }})jinja", "", true},  // TypeError
    {R"jinja({{ raise_exception('boom') }})jinja", "", true},  // TemplateError
    {R"jinja({% macro m(a) %}{% endmacro %}{{ m(1, 2) }})jinja", "", true},  // TypeError
    {R"jinja({% set x = 1 %}{% set x.y = 2 %})jinja", "", true},  // TemplateRuntimeError
    {R"jinja({{ range(100001)|length }})jinja", "", true},  // OverflowError
    {R"jinja({% for a, b in [1] %}{% endfor %})jinja", "", true},  // TypeError
    {R"jinja({{ 'x' })jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% if %})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% for %})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% endif %})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({{ }})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% if true %})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({{ 1 +}})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% set x = [1, 2, %})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% break %})jinja", "", true},  // SyntaxError
    {R"jinja({% for i in [] %}{{ x|nosuch }}{% endfor %})jinja", "", true},  // TemplateAssertionError
    {R"jinja({{ 1 is nosuchtest }})jinja", "", true},  // TemplateAssertionError
    {R"jinja({% include 'x' %})jinja", "", true},  // TypeError
    {R"jinja({% foo %})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({{ 'unterminated }})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({# unterminated)jinja", "", true},  // TemplateSyntaxError
    {R"jinja({{ ) }})jinja", "", true},  // TemplateSyntaxError
    {R"jinja({% if false %}{% filter nosuch %}{% endfilter %}{% endif %})jinja", "", true},  // TemplateAssertionError
// NotErrors
    {R"jinja({% if l.append %}x{% endif %}ok)jinja", R"jinja(ok)jinja", false},
    {R"jinja({% if false %}{{ x|nosuch }}{% endif %}ok)jinja", R"jinja(ok)jinja", false},
    {R"jinja({{ (x|nosuch) if false else 1 }})jinja", R"jinja(1)jinja", false},

};

nlohmann::ordered_json TestContext() {
  return nlohmann::ordered_json::parse(R"json({
    "s": "h\u00e9llo", "l": [1, 2, 3], "d": {"a": 1, "b": [true, null, 1.5]},
    "msgs": [{"role": "user", "content": "hi"},
             {"role": "assistant", "content": "yo",
              "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}]})json");
}

RenderOptions FixedClock() {
  RenderOptions o;
  o.now_unix_seconds = 1721995200;  // 2024-07-26 12:00:00 UTC
  return o;
}

Result<std::string> Render(std::string_view tmpl, const nlohmann::ordered_json& ctx,
                           const RenderOptions& options = FixedClock()) {
  ASSIGN_OR_RETURN(std::unique_ptr<Template> t, Template::Parse(tmpl));
  return t->Render(ctx, options);
}

TEST(Jinja, MatchesJinja2Table) {
  const nlohmann::ordered_json ctx = TestContext();
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.tmpl);
    Result<std::string> got = Render(c.tmpl, ctx);
    if (c.error) {
      ASSERT_FALSE(got.ok()) << "rendered: " << *got;
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(got.status().message().rfind("chat template line ", 0), 0u) << got.status().message();
    } else {
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, c.want);
    }
  }
}

TEST(Jinja, ErrorsNameTheLine) {
  Result<std::string> r = Render("line one\n{% if true %}\n{{ 1 + 'a' }}\n{% endif %}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("chat template line 3: ", 0), 0u) << r.status().message();
  r = Render("a\nb\n{% for x in %}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("chat template line 3: ", 0), 0u) << r.status().message();
  r = Render("{{ raise_exception('Conversation roles must alternate') }}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "chat template line 1: Conversation roles must alternate");
}

TEST(Jinja, LoopIterationLimit) {
  RenderOptions o = FixedClock();
  o.limits.max_loop_iterations = 1000;
  Result<std::string> r = Render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", {}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(Render("{% for i in range(10) %}{% for j in range(99) %}{% endfor %}{% endfor %}", {}, o).ok());
}

TEST(Jinja, RecursionLimit) {
  Result<std::string> r = Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // Depth 60 is within the default limit of 64.
  Result<std::string> ok = Render("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}done{% endif %}{% endmacro %}{{ f(60) }}", {});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, "done");
}

TEST(Jinja, OutputAndValueSizeLimits) {
  RenderOptions o = FixedClock();
  o.limits.max_output_bytes = 1000;
  Result<std::string> r = Render("{% for i in range(2000) %}x{% endfor %}", {}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // A string doubled in a namespace hits the limit without being printed.
  r = Render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", {}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  r = Render("{{ 'x' * 100000000000 }}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  r = Render("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  // Nesting a list in itself 1000 deep stops at the depth bound.
  r = Render("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
}

TEST(Jinja, DeepTemplateNestingIsASyntaxError) {
  std::string deep(5000, '(');
  Result<std::string> r = Render("{{ " + deep + "1" + std::string(5000, ')') + " }}", {});
  ASSERT_FALSE(r.ok());
  std::string blocks;
  for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
  r = Render(blocks, {});
  ASSERT_FALSE(r.ok());
}

TEST(Jinja, NamespaceCannotHoldANamespace) {
  // Would form a reference cycle; jinja2 allows it, tide refuses with an error.
  Result<std::string> r = Render("{% set ns = namespace() %}{% set ns.me = [ns] %}", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(Jinja, KeyOrderFollowsTheContext) {
  auto ordered = nlohmann::ordered_json::parse(R"({"t": {"zeta": 1, "alpha": 2}})");
  Result<std::string> r = Render("{{ t|tojson }}", ordered);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, R"({"zeta": 1, "alpha": 2})");
  // A plain nlohmann::json sorted its keys before tide saw them.
  auto plain = nlohmann::json::parse(R"({"t": {"zeta": 1, "alpha": 2}})");
  auto t = Template::Parse("{{ t|tojson }}");
  ASSERT_TRUE(t.ok());
  r = (*t)->Render(plain);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, R"({"alpha": 2, "zeta": 1})");
}

TEST(Jinja, RenderChatTemplateBuildsTheHfContext) {
  const char* tmpl =
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}"
      "{% if tools is none %}[no tools]{% endif %}{% if documents is none %}[no docs]{% endif %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}{% if enable_thinking is false %}/no_think{% endif %}";
  auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  Result<std::string> r = RenderChatTemplate(tmpl, messages, nullptr, true, "<s>", "</s>",
                                             nlohmann::ordered_json{{"enable_thinking", false}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "<s><user>hi</s>[no tools][no docs]<assistant>/no_think");
  r = RenderChatTemplate(tmpl, messages, nullptr, false, "<s>", "</s>", nlohmann::ordered_json::array());
  EXPECT_FALSE(r.ok());
}

TEST(Jinja, SelectChatTemplateFollowsTransformers) {
  auto list = nlohmann::ordered_json::parse(
      R"([{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}, {"name": "rag", "template": "R"}])");
  const std::string rag = "rag", other = "{{ x }}";
  EXPECT_EQ(*SelectChatTemplate(list, nullptr, false), "D");
  EXPECT_EQ(*SelectChatTemplate(list, nullptr, true), "T");
  EXPECT_EQ(*SelectChatTemplate(list, &rag, true), "R");
  EXPECT_EQ(*SelectChatTemplate(list, &other, false), "{{ x }}");
  EXPECT_EQ(*SelectChatTemplate(nlohmann::ordered_json("S"), nullptr, true), "S");
  EXPECT_EQ(SelectChatTemplate(nullptr, nullptr, false).status().code(), StatusCode::kNotFound);
  auto no_default = nlohmann::ordered_json::parse(R"([{"name": "rag", "template": "R"}])");
  EXPECT_EQ(SelectChatTemplate(no_default, nullptr, false).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SelectChatTemplate(nlohmann::ordered_json::parse("[1]"), nullptr, false).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Jinja, StrftimeNowUsesTheClock) {
  Result<std::string> fixed = Render("{{ strftime_now('%Y-%m-%d %H:%M') }}", {});
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(*fixed, "2024-07-26 12:00");
  Result<std::string> now = Render("{{ strftime_now('%Y') }}", {}, RenderOptions());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->size(), 4u);
}

TEST(Jinja, ConcurrentRendersShareOneTemplate) {
  auto t = Template::Parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "{{ m.content }}{% endfor %}={{ ns.n }}");
  ASSERT_TRUE(t.ok());
  std::vector<std::thread> threads;
  std::vector<std::string> outs(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      nlohmann::ordered_json ctx;
      ctx["messages"] = nlohmann::ordered_json::array();
      for (int k = 0; k <= i; ++k) ctx["messages"].push_back({{"content", std::to_string(k)}});
      for (int rep = 0; rep < 50; ++rep) outs[i] = *(*t)->Render(ctx);
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 8; ++i) {
    std::string want;
    for (int k = 0; k <= i; ++k) want += std::to_string(k);
    EXPECT_EQ(outs[i], want + "=" + std::to_string(i + 1));
  }
}

TEST(Jinja, InvalidUtf8InTheTemplateSurvives) {
  Result<std::string> r = Render("a\xff{{ 'b\xfe' }}{{ '\xfd'|length }}", {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "a\xff" "b\xfe" "1");
}

}  // namespace
}  // namespace tide::jinja

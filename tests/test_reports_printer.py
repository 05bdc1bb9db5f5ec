"""The LaTeX printer: exact strings for our notation, SymPy's everywhere else."""
import pytest
import sympy as sp

from reports.latex_printer import accent, latex, latex_pieces, shape_tex, visible_len

S = sp.Symbol


@pytest.mark.parametrize("name, tex", [
    ("v1_bar", r"\bar{v}_{1}"),
    ("W_bar", r"\bar{W}"),
    ("yhat_bar", r"\bar{\hat{y}}"),
    ("alpha2_bar", r"\bar{\alpha}_{2}"),
    ("x_bar_bar", r"\bar{\bar{x}}"),
    ("w11", r"w_{11}"),
    ("x_1", r"x_{1}"),
    ("yhat", r"\hat{y}"),
    ("running_mean", r"\mathrm{running\_mean}"),  # words stay one upright name
    ("running_var_bar", r"\bar{\mathrm{running\_var}}"),
    ("W_hh", r"W_{hh}"),  # a letter with a word subscript keeps the subscript
    ("y1_2", r"y_{1,2}"),  # numbered twice: comma, not a space
    ("var", r"\mathrm{var}"),
])
def test_symbol_names(name, tex):
    assert latex(S(name)) == tex


def test_latex_names_override_a_symbol_and_its_adjoint():
    names = {"w1_11": "w^{(1)}_{11}", "l": r"\ell"}
    assert latex(S("w1_11"), names) == "w^{(1)}_{11}"
    assert latex(S("w1_11_bar"), names) == r"\bar{w}^{(1)}_{11}"
    assert latex(S("l_bar"), names) == r"\bar{\ell}"
    # an override of the adjoint itself wins
    assert latex(S("l_bar"), {"l_bar": r"\delta"}) == r"\delta"


def test_accent_sits_on_the_head_of_a_name():
    assert accent("w^{(1)}_{11}") == r"\bar{w}^{(1)}_{11}"
    assert accent(r"\hat{y}") == r"\bar{\hat{y}}"
    assert accent(r"\mathbf{x}_1") == r"\bar{\mathbf{x}}_1"
    assert accent("(a+b)") == r"\overline{(a+b)}"


def test_functions_of_derive():
    from derive.functions import maximum, relu, sigmoid

    x, y = sp.symbols("x y")
    assert latex(sigmoid(x)) == r"\sigma\left(x\right)"
    assert latex(sigmoid(x) ** 2) == r"\sigma^{2}\left(x\right)"
    assert latex(relu(x)) == r"\operatorname{ReLU}\left(x\right)"
    assert latex(maximum(y, x)) == r"\max\left(y, x\right)"  # argument order kept
    assert latex(sp.Heaviside(x)) == r"H\left(x\right)"
    assert latex(sp.Heaviside(x, 0)) == r"H\left(x\right)"
    assert latex(relu(x).diff(x)) == r"H\left(x\right)"


def test_sigmoid_derivative_reads_as_in_an_exam():
    from derive.functions import sigmoid

    z = S("z")
    assert latex(sigmoid(z).diff(z)) == \
        r"\left(1 - \sigma\left(z\right)\right) \sigma\left(z\right)"


def test_matrix_notation():
    A, B = sp.MatrixSymbol("A", 3, 4), sp.MatrixSymbol("B", 4, 2)
    C, Zb = sp.MatrixSymbol("C", 3, 2), sp.MatrixSymbol("Z_bar", 3, 2)
    assert latex(A * B) == r"A \, B"
    assert latex(Zb * B.T) == r"\bar{Z} \, B^{\top}"
    assert latex(A.T) == r"A^{\top}"
    assert latex((A * B).T) == r"B^{\top} \, A^{\top}"
    assert latex(sp.Transpose(A * B)) == r"\left(A \, B\right)^{\top}"
    assert latex(sp.HadamardProduct(Zb, C)) == r"\bar{Z} \odot C"
    assert latex(sp.HadamardProduct(A * B, C)) == r"\left(A \, B\right) \odot C"
    assert latex(2 * A * B) == r"2 A \, B"
    assert latex(-sp.Rational(1, 2) * A * B) == r"- \frac{1}{2} A \, B"
    assert latex(S("eta") * sp.MatrixSymbol("G", 4, 2)) == r"\eta G"


def test_floats_print_with_six_significant_digits():
    assert latex(sp.Float(0.11920292202812)) == "0.119203"
    assert latex(sp.Float(1.5e-9)) == r"1.5 \cdot 10^{-9}"
    assert latex(2 * S("x") + sp.Float(0.1)) == "2 x + 0.1"


def test_numbers_keep_sympy_notation():
    assert latex(sp.pi / 2) == r"\frac{\pi}{2}"
    assert latex(sp.sqrt(2) / 2) == r"\frac{\sqrt{2}}{2}"
    assert latex(r"\already{latex}") == r"\already{latex}"


def test_indexed_entries():
    i, j = sp.symbols("i j")
    assert latex(sp.IndexedBase("W")[i, j]) == "{W}_{i,j}"
    # a name with a subscript of its own is bracketed: its subscript stays apart from the
    # indices (and TeX sees no double subscript)
    assert latex(sp.IndexedBase("v6_bar")[i]) == r"\left(\bar{v}_{6}\right)_{i}"
    assert latex(sp.IndexedBase("c_next")[i, j]) == r"\left(c_{\mathrm{next}}\right)_{i,j}"


def test_shape_tex():
    assert shape_tex((3, 4)) == r"3 \times 4"
    assert shape_tex(("B", sp.Symbol("d_in"))) == r"B \times d_{in}"


def test_pieces_join_back_to_the_whole():
    x1, x2, v = sp.symbols("x1 x2 v1_bar")
    for expr in (2 * x1 + 2 * x2 + v, x1 - x2 - 3, -2 * v * x1 + 3 * x1**2 * x2 + 1):
        pieces, glue = latex_pieces(expr)
        assert glue == "" and len(pieces) == len(expr.args)
        assert " ".join(pieces) == latex(expr)
    pieces, glue = latex_pieces(-2 * x1 * (x2 + 1))
    assert glue == r"\cdot " and pieces == ["- 2", "x_{1}", r"\left(x_{2} + 1\right)"]
    assert latex_pieces(x1 / (1 + x2)) == ([latex(x1 / (1 + x2))], "")


def test_visible_len_measures_what_typesets():
    assert visible_len(r"\bar{v}_{1}") == 2
    assert visible_len(r"\log{\left(x \right)}") == 7  # "log(x)", sized brackets wider
    assert visible_len("a + b") == 2 + 2.5
    assert visible_len(r"\frac{\partial y}{\partial w}") == 4

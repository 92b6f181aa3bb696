import mypkg
import six

print(mypkg.VALUE, six.__version__)
